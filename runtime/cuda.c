/* cuda.c -- the CUDA driver API, loaded at run time with dlopen: no
 * link-time dependency on libcuda, so kiln builds and runs on machines
 * without a GPU, and asking for the GPU there is an ordinary error. On top
 * of it: loading a generated PTX module and running it (inputs in, kernels
 * in order, fetches out) with device memory planned at compile time. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "rt_cuda.h"

/* The driver's types, as cuda.h declares them (kiln does not include
 * cuda.h, so that it builds without the toolkit). */
typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef rt_devptr CUdeviceptr;
enum {
    CU_JIT_INFO_LOG_BUFFER = 3,
    CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4,
    CU_JIT_ERROR_LOG_BUFFER = 5,
    CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6
};
enum { CU_STREAM_NON_BLOCKING = 1 };
enum {
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
};

/* The entry points kiln uses: (field, exported symbol, signature). */
#define RT_CUDA_FUNCS(X)                                                                           \
    X(Init, "cuInit", CUresult (*)(unsigned))                                                      \
    X(GetErrorName, "cuGetErrorName", CUresult (*)(CUresult, const char **))                       \
    X(GetErrorString, "cuGetErrorString", CUresult (*)(CUresult, const char **))                   \
    X(DeviceGetCount, "cuDeviceGetCount", CUresult (*)(int *))                                     \
    X(DeviceGet, "cuDeviceGet", CUresult (*)(CUdevice *, int))                                     \
    X(DeviceGetName, "cuDeviceGetName", CUresult (*)(char *, int, CUdevice))                       \
    X(DeviceGetAttribute, "cuDeviceGetAttribute", CUresult (*)(int *, int, CUdevice))              \
    X(PrimaryCtxRetain, "cuDevicePrimaryCtxRetain", CUresult (*)(CUcontext *, CUdevice))           \
    X(PrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", CUresult (*)(CUdevice))                   \
    X(CtxSetCurrent, "cuCtxSetCurrent", CUresult (*)(CUcontext))                                   \
    X(ModuleLoadDataEx, "cuModuleLoadDataEx",                                                      \
      CUresult (*)(CUmodule *, const void *, unsigned, int *, void **))                            \
    X(ModuleUnload, "cuModuleUnload", CUresult (*)(CUmodule))                                      \
    X(ModuleGetFunction, "cuModuleGetFunction",                                                    \
      CUresult (*)(CUfunction *, CUmodule, const char *))                                          \
    X(ModuleGetGlobal, "cuModuleGetGlobal_v2",                                                     \
      CUresult (*)(CUdeviceptr *, size_t *, CUmodule, const char *))                               \
    X(LaunchKernel, "cuLaunchKernel",                                                              \
      CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,         \
                   unsigned, CUstream, void **, void **))                                          \
    X(MemAlloc, "cuMemAlloc_v2", CUresult (*)(CUdeviceptr *, size_t))                              \
    X(MemFree, "cuMemFree_v2", CUresult (*)(CUdeviceptr))                                          \
    X(MemcpyHtoD, "cuMemcpyHtoD_v2", CUresult (*)(CUdeviceptr, const void *, size_t))              \
    X(MemcpyDtoH, "cuMemcpyDtoH_v2", CUresult (*)(void *, CUdeviceptr, size_t))                    \
    X(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2",                                                     \
      CUresult (*)(CUdeviceptr, const void *, size_t, CUstream))                                   \
    X(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2",                                                     \
      CUresult (*)(void *, CUdeviceptr, size_t, CUstream))                                         \
    X(MemsetD8Async, "cuMemsetD8Async",                                                            \
      CUresult (*)(CUdeviceptr, unsigned char, size_t, CUstream))                                  \
    X(StreamCreate, "cuStreamCreate", CUresult (*)(CUstream *, unsigned))                          \
    X(StreamSynchronize, "cuStreamSynchronize", CUresult (*)(CUstream))                            \
    X(StreamDestroy, "cuStreamDestroy_v2", CUresult (*)(CUstream))

struct rt_cuda {
    void *dl;
#define RT_CUDA_FIELD(field, sym, type) __typeof__(type) field;
    RT_CUDA_FUNCS(RT_CUDA_FIELD)
#undef RT_CUDA_FIELD
    CUdevice dev;
    CUcontext ctx;
    bool retained;
    int sm;
    char name[160];
};

/* Sets status from a driver error: "<what>: CUDA_ERROR_X (text)". */
static int cu_error(const rt_cuda *cu, CUresult r, kiln_status *status, const char *what)
{
    const char *name = NULL, *text = NULL;
    if (cu->GetErrorName) cu->GetErrorName(r, &name);
    if (cu->GetErrorString) cu->GetErrorString(r, &text);
    return ir_set_status(status, r == 2 ? KILN_ERR_OUT_OF_MEMORY : KILN_ERR_INTERNAL,
                         "CUDA: %s: %s (%s)", what, name ? name : "error",
                         text ? text : "no description");
}

#define CU_TRY(cu, call, status, what)                                                             \
    do {                                                                                           \
        CUresult r_ = (call);                                                                      \
        if (r_ != 0) return cu_error((cu), r_, (status), (what));                                  \
    } while (0)

rt_cuda *rt_cuda_open(const char *lib, int ordinal, kiln_status *status)
{
    if (!lib) lib = "libcuda.so.1";
    rt_cuda *cu = ir_calloc(1, sizeof *cu);
    if (!cu) {
        ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "CUDA: out of memory");
        return NULL;
    }
    dlerror();
    cu->dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!cu->dl) {
        const char *e = dlerror();
        ir_set_status(status, KILN_ERR_NOT_FOUND, "no CUDA driver found (%s: %s)", lib,
                      e ? e : "cannot load");
        ir_free(cu);
        return NULL;
    }
#define RT_CUDA_LOAD(field, sym, type)                                                             \
    cu->field = (type)dlsym(cu->dl, sym);                                                          \
    if (!cu->field) {                                                                              \
        ir_set_status(status, KILN_ERR_NOT_FOUND,                                                  \
                      "the CUDA driver %s has no %s (too old a driver?)", lib, sym);               \
        goto fail;                                                                                 \
    }
    RT_CUDA_FUNCS(RT_CUDA_LOAD)
#undef RT_CUDA_LOAD
    CUresult r;
    int count = 0;
    if ((r = cu->Init(0)) != 0) {
        cu_error(cu, r, status, "cuInit failed (no usable GPU or driver?)");
        goto fail;
    }
    if ((r = cu->DeviceGetCount(&count)) != 0) {
        cu_error(cu, r, status, "cannot count the devices");
        goto fail;
    }
    if (ordinal < 0 || ordinal >= count) {
        ir_set_status(status, KILN_ERR_NOT_FOUND, "CUDA: no device %d (the driver sees %d)",
                      ordinal, count);
        goto fail;
    }
    int major = 0, minor = 0;
    if ((r = cu->DeviceGet(&cu->dev, ordinal)) != 0 ||
        (r = cu->DeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                    cu->dev)) != 0 ||
        (r = cu->DeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                    cu->dev)) != 0) {
        cu_error(cu, r, status, "cannot query the device");
        goto fail;
    }
    cu->sm = major * 10 + minor;
    char dn[128] = "";
    cu->DeviceGetName(dn, (int)sizeof dn, cu->dev);
    snprintf(cu->name, sizeof cu->name, "%s (sm_%d)", dn, cu->sm);
    if (cu->sm < 80) {
        ir_set_status(status, KILN_ERR_UNIMPLEMENTED,
                      "CUDA: %s: kiln's CUDA backend needs sm_80 or newer", cu->name);
        goto fail;
    }
    if ((r = cu->PrimaryCtxRetain(&cu->ctx, cu->dev)) != 0) {
        cu_error(cu, r, status, "cannot create a context");
        goto fail;
    }
    cu->retained = true;
    return cu;
fail:
    rt_cuda_close(cu);
    return NULL;
}

void rt_cuda_close(rt_cuda *cu)
{
    if (!cu) return;
    if (cu->retained) cu->PrimaryCtxRelease(cu->dev);
    if (cu->dl) dlclose(cu->dl);
    ir_free(cu);
}

const char *rt_cuda_device_name(const rt_cuda *cu) { return cu->name; }
int rt_cuda_sm(const rt_cuda *cu) { return cu->sm; }

int rt_cuda_alloc(rt_cuda *cu, size_t bytes, rt_devptr *p, kiln_status *status)
{
    *p = 0;
    CU_TRY(cu, cu->CtxSetCurrent(cu->ctx), status, "cannot bind the context");
    CUresult r = cu->MemAlloc(p, bytes ? bytes : 256);
    if (r != 0) {
        char what[96];
        snprintf(what, sizeof what, "cannot allocate %zu bytes on the device", bytes);
        return cu_error(cu, r, status, what);
    }
    return KILN_OK;
}

void rt_cuda_free(rt_cuda *cu, rt_devptr p)
{
    if (!p) return;
    cu->CtxSetCurrent(cu->ctx);
    cu->MemFree(p);
}

int rt_cuda_upload(rt_cuda *cu, rt_devptr dst, const void *src, size_t bytes, kiln_status *status)
{
    if (!bytes) return KILN_OK;
    CU_TRY(cu, cu->CtxSetCurrent(cu->ctx), status, "cannot bind the context");
    CU_TRY(cu, cu->MemcpyHtoD(dst, src, bytes), status, "copy to the device failed");
    return KILN_OK;
}

int rt_cuda_download(rt_cuda *cu, void *dst, rt_devptr src, size_t bytes, kiln_status *status)
{
    if (!bytes) return KILN_OK;
    CU_TRY(cu, cu->CtxSetCurrent(cu->ctx), status, "cannot bind the context");
    CU_TRY(cu, cu->MemcpyDtoH(dst, src, bytes), status, "copy from the device failed");
    return KILN_OK;
}

/* ---- programs ---- */

struct rt_cuda_module {
    rt_cuda *cu;
    const cg_gpu_program *prog; /* borrowed: outlives the module */
    CUmodule mod;
    CUfunction *fns;       /* per kernel */
    CUdeviceptr **globals; /* per kernel, per parameter: a module global's address (or 0) */
};

void rt_cuda_unload(rt_cuda_module *m)
{
    if (!m) return;
    for (int k = 0; m->globals && k < m->prog->nkernels; k++) ir_free(m->globals[k]);
    ir_free(m->globals);
    ir_free(m->fns);
    if (m->mod) {
        m->cu->CtxSetCurrent(m->cu->ctx);
        m->cu->ModuleUnload(m->mod);
    }
    ir_free(m);
}

rt_cuda_module *rt_cuda_load(rt_cuda *cu, const cg_gpu_program *p, kiln_status *status)
{
    rt_cuda_module *m = ir_calloc(1, sizeof *m);
    if (!m) goto oom;
    m->cu = cu;
    m->prog = p;
    m->fns = ir_calloc((size_t)p->nkernels + 1, sizeof(CUfunction));
    m->globals = ir_calloc((size_t)p->nkernels + 1, sizeof(CUdeviceptr *));
    if (!m->fns || !m->globals) goto oom;
    CUresult r = cu->CtxSetCurrent(cu->ctx);
    if (r != 0) {
        cu_error(cu, r, status, "cannot bind the context");
        goto fail;
    }
    char errlog[8192] = "", infolog[1024] = "";
    int opts[4] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                   CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES};
    void *vals[4] = {errlog, (void *)(uintptr_t)sizeof errlog, infolog,
                     (void *)(uintptr_t)sizeof infolog};
    if ((r = cu->ModuleLoadDataEx(&m->mod, p->ptx, 4, opts, vals)) != 0) {
        const char *name = NULL;
        cu->GetErrorName(r, &name);
        ir_set_status(status, KILN_ERR_INTERNAL,
                      "CUDA: the driver rejected the generated PTX (sm_%d) on %s: %s: %.4000s",
                      p->sm, cu->name, name ? name : "error", errlog[0] ? errlog : "(no JIT log)");
        m->mod = NULL;
        goto fail;
    }
    for (int k = 0; k < p->nkernels; k++) {
        const cg_gpu_kernel *kn = &p->kernels[k];
        if ((r = cu->ModuleGetFunction(&m->fns[k], m->mod, kn->name)) != 0) {
            cu_error(cu, r, status, kn->name);
            goto fail;
        }
        m->globals[k] = ir_calloc((size_t)kn->nparams + 1, sizeof(CUdeviceptr));
        if (!m->globals[k]) goto oom;
        for (int i = 0; i < kn->nparams; i++) {
            if (kn->params[i].where != CG_GPU_GLOBAL) continue;
            char gname[48];
            snprintf(gname, sizeof gname, "kiln_const_%d", kn->params[i].index);
            size_t bytes = 0;
            if ((r = cu->ModuleGetGlobal(&m->globals[k][i], &bytes, m->mod, gname)) != 0) {
                cu_error(cu, r, status, gname);
                goto fail;
            }
        }
    }
    return m;
oom:
    ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "CUDA: out of memory loading a program");
fail:
    rt_cuda_unload(m);
    return NULL;
}

static size_t round_up(size_t n) { return (n + 255) & ~(size_t)255; }

static size_t type_bytes(const ir_type *t)
{
    return (size_t)ir_shape_numel(t->rank, t->dims) * kiln_dtype_size(t->dtype);
}

/* The device address a parameter (or a fetch) names in this run. */
static CUdeviceptr where_is(const cg_gpu_param *q, CUdeviceptr global, const CUdeviceptr *in,
                            const CUdeviceptr *out, const rt_devptr *vars, CUdeviceptr arena,
                            CUdeviceptr errs)
{
    switch (q->where) {
    case CG_GPU_INPUT:
        return in[q->index];
    case CG_GPU_OUTPUT:
        return out[q->index];
    case CG_GPU_VAR:
        return vars[q->index];
    case CG_GPU_ARENA:
        return arena + q->offset;
    case CG_GPU_ERROR:
        return errs + 4 * (CUdeviceptr)q->index;
    case CG_GPU_GLOBAL:
        return global;
    default:
        return 0;
    }
}

int rt_cuda_run(rt_cuda_module *m, const void *const *inputs, void *const *outputs,
                const rt_devptr *vars, kiln_status *status)
{
    rt_cuda *cu = m->cu;
    const cg_gpu_program *p = m->prog;
    int rc = KILN_OK;
    CUstream stream = NULL;
    CUdeviceptr block = 0;
    int32_t *errs_host = ir_calloc((size_t)p->nkernels + 1, sizeof(int32_t));
    CUdeviceptr *in = ir_calloc((size_t)p->ninputs + 1, sizeof(CUdeviceptr));
    CUdeviceptr *out = ir_calloc((size_t)p->noutputs + 1, sizeof(CUdeviceptr));
    if (!errs_host || !in || !out) {
        rc = ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "CUDA: out of memory");
        goto done;
    }
    /* One device block per run: the arena, the fed inputs, the outputs
     * and the kernels' error words. */
    size_t total = round_up(p->arena_size);
    for (int i = 0; i < p->ninputs; i++) total += round_up(type_bytes(&p->input_types[i]));
    for (int i = 0; i < p->noutputs; i++) total += round_up(type_bytes(&p->output_types[i]));
    size_t errs_at = total;
    total += round_up(sizeof(int32_t) * (size_t)(p->nkernels + 1));
    if ((rc = rt_cuda_alloc(cu, total, &block, status))) goto done;
    CUresult r;
    if ((r = cu->StreamCreate(&stream, CU_STREAM_NON_BLOCKING)) != 0) {
        rc = cu_error(cu, r, status, "cannot create a stream");
        stream = NULL;
        goto done;
    }
    CUdeviceptr arena = block, at = block + round_up(p->arena_size), errs = block + errs_at;
    for (int i = 0; i < p->ninputs; i++) {
        in[i] = at;
        size_t n = type_bytes(&p->input_types[i]);
        at += round_up(n);
        if (n && (r = cu->MemcpyHtoDAsync(in[i], inputs[i], n, stream)) != 0) {
            rc = cu_error(cu, r, status, "copying an input to the device failed");
            goto sync;
        }
    }
    for (int i = 0; i < p->noutputs; i++) {
        out[i] = at;
        at += round_up(type_bytes(&p->output_types[i]));
    }
    if ((r = cu->MemsetD8Async(errs, 0, sizeof(int32_t) * (size_t)(p->nkernels + 1), stream)) !=
        0) {
        rc = cu_error(cu, r, status, "cannot clear the error words");
        goto sync;
    }
    for (int k = 0; k < p->nkernels; k++) {
        const cg_gpu_kernel *kn = &p->kernels[k];
        CUdeviceptr small[CG_GPU_MAX_PARAMS];
        void *args[CG_GPU_MAX_PARAMS];
        if (kn->nparams > CG_GPU_MAX_PARAMS) {
            rc = ir_set_status(status, KILN_ERR_INTERNAL, "%s: too many parameters", kn->label);
            goto sync;
        }
        for (int i = 0; i < kn->nparams; i++) {
            small[i] = where_is(&kn->params[i], m->globals[k][i], in, out, vars, arena, errs);
            args[i] = &small[i];
        }
        if ((r = cu->LaunchKernel(m->fns[k], kn->grid, 1, 1, kn->block, 1, 1, 0, stream, args,
                                  NULL)) != 0) {
            char what[300];
            snprintf(what, sizeof what, "cannot launch %s", kn->label ? kn->label : kn->name);
            rc = cu_error(cu, r, status, what);
            goto sync;
        }
    }
    for (int i = 0; i < p->noutputs; i++) {
        size_t n = type_bytes(&p->output_types[i]);
        CUdeviceptr src = p->fetch[i].where == CG_GPU_OUTPUT ? out[i] : 0;
        if (p->fetch[i].where == CG_GPU_GLOBAL) {
            char gname[48];
            size_t bytes = 0;
            snprintf(gname, sizeof gname, "kiln_const_%d", p->fetch[i].index);
            if ((r = cu->ModuleGetGlobal(&src, &bytes, m->mod, gname)) != 0) {
                rc = cu_error(cu, r, status, gname);
                goto sync;
            }
        } else if (p->fetch[i].where != CG_GPU_OUTPUT) {
            src = where_is(&p->fetch[i], 0, in, out, vars, arena, errs);
        }
        if (n && (r = cu->MemcpyDtoHAsync(outputs[i], src, n, stream)) != 0) {
            rc = cu_error(cu, r, status, "copying an output from the device failed");
            goto sync;
        }
    }
    if (p->nkernels && (r = cu->MemcpyDtoHAsync(
                            errs_host, errs, sizeof(int32_t) * (size_t)p->nkernels, stream)) != 0) {
        rc = cu_error(cu, r, status, "copying the error words failed");
        goto sync;
    }
sync:
    if ((r = cu->StreamSynchronize(stream)) != 0 && rc == KILN_OK)
        rc = cu_error(cu, r, status, "running the kernels failed");
    for (int k = 0; rc == KILN_OK && k < p->nkernels; k++)
        if (errs_host[k]) rc = cg_gpu_program_error(p, k, errs_host[k], status);
    if (rc == KILN_OK) ir_status_ok(status);
done:
    if (stream) cu->StreamDestroy(stream);
    if (block) rt_cuda_free(cu, block);
    ir_free(errs_host);
    ir_free(in);
    ir_free(out);
    return rc;
}
