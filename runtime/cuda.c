/* cuda.c -- the CUDA driver API, loaded at run time with dlopen: no
 * link-time dependency on libcuda, so kiln builds and runs on machines
 * without a GPU, and asking for the GPU there is an ordinary error. On top
 * of it: loading a generated PTX module and running it (inputs in, kernels
 * in order, fetches out) with device memory planned at compile time. */
#include <dlfcn.h>
#include <pthread.h>
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

/* cuBLAS's types and the entry points kiln uses (cublas_api.h,
 * library_types.h), declared here so kiln builds without the toolkit. */
typedef int cublasStatus_t;
typedef struct cublasContext *cublasHandle_t;
enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum { CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_64F = 70 };
enum { CUBLAS_GEMM_DEFAULT = -1 };

#define RT_CUBLAS_FUNCS(X)                                                                         \
    X(Create, "cublasCreate_v2", cublasStatus_t (*)(cublasHandle_t *))                             \
    X(Destroy, "cublasDestroy_v2", cublasStatus_t (*)(cublasHandle_t))                             \
    X(SetStream, "cublasSetStream_v2", cublasStatus_t (*)(cublasHandle_t, CUstream))               \
    X(GetStatusName, "cublasGetStatusName", const char *(*)(cublasStatus_t))                       \
    X(GemmStridedBatchedEx, "cublasGemmStridedBatchedEx",                                          \
      cublasStatus_t (*)(cublasHandle_t, int, int, int, int, int, const void *, const void *, int, \
                         int, long long, const void *, int, int, long long, const void *, void *,  \
                         int, int, long long, int, int, int))

#define RT_CUBLAS_POOL 16 /* idle handles kept */

struct rt_cublas {
    void *dl;
#define RT_CUBLAS_FIELD(field, sym, type) __typeof__(type) field;
    RT_CUBLAS_FUNCS(RT_CUBLAS_FIELD)
#undef RT_CUBLAS_FIELD
    pthread_mutex_t lock; /* guards the idle handles */
    int nidle;
    cublasHandle_t idle[RT_CUBLAS_POOL];
};

struct rt_cuda {
    void *dl;
    rt_cublas *blas; /* loaded when a session's graph has a MatMul or Gemm */
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

rt_cublas *rt_cublas_open(const char *lib, kiln_status *status)
{
    /* the loader's search path first, then the toolkit's default place
     * (not on the default search path: the toolkit's installer leaves
     * /usr/local/cuda/lib64 to LD_LIBRARY_PATH) */
    static const char *const names[] = {"libcublas.so.12", "libcublas.so.13", "libcublas.so",
                                        "/usr/local/cuda/lib64/libcublas.so.12",
                                        "/usr/local/cuda/lib64/libcublas.so.13"};
    const int nnames = (int)(sizeof names / sizeof names[0]);
    rt_cublas *b = ir_calloc(1, sizeof *b);
    if (!b) {
        ir_set_status(status, KILN_ERR_OUT_OF_MEMORY, "cuBLAS: out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        ir_free(b);
        ir_set_status(status, KILN_ERR_INTERNAL, "cuBLAS: cannot create a lock");
        return NULL;
    }
    /* the named library, else the first of the known names that loads;
     * the error names the first one tried */
    char first_err[512] = "";
    const char *first = lib ? lib : names[0];
    for (int i = 0; !b->dl && i < (lib ? 1 : nnames); i++) {
        const char *name = lib ? lib : names[i];
        dlerror();
        b->dl = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        if (!b->dl && i == 0) {
            const char *e = dlerror();
            snprintf(first_err, sizeof first_err, "%s", e ? e : "cannot load");
        }
        if (b->dl) lib = name;
    }
    if (!b->dl) {
        ir_set_status(status, KILN_ERR_NOT_FOUND, "cuBLAS not found (%s: %s)", first, first_err);
        pthread_mutex_destroy(&b->lock);
        ir_free(b);
        return NULL;
    }
#define RT_CUBLAS_LOAD(field, sym, type)                                                           \
    b->field = (type)dlsym(b->dl, sym);                                                            \
    if (!b->field) {                                                                               \
        ir_set_status(status, KILN_ERR_NOT_FOUND, "cuBLAS: %s has no %s (too old a cuBLAS?)", lib, \
                      sym);                                                                        \
        rt_cublas_close(b);                                                                        \
        return NULL;                                                                               \
    }
    RT_CUBLAS_FUNCS(RT_CUBLAS_LOAD)
#undef RT_CUBLAS_LOAD
    return b;
}

void rt_cublas_close(rt_cublas *b)
{
    if (!b) return;
    for (int i = 0; i < b->nidle; i++) b->Destroy(b->idle[i]);
    if (b->dl) dlclose(b->dl);
    pthread_mutex_destroy(&b->lock);
    ir_free(b);
}

int rt_cuda_load_cublas(rt_cuda *cu, const char *lib, kiln_status *status)
{
    if (cu->blas) return KILN_OK;
    cu->blas = rt_cublas_open(lib, status);
    return cu->blas ? KILN_OK : (status ? status->code : KILN_ERR_NOT_FOUND);
}

static const char *blas_status_name(const rt_cublas *b, cublasStatus_t r)
{
    const char *n = b->GetStatusName ? b->GetStatusName(r) : NULL;
    return n ? n : "CUBLAS_STATUS_?";
}

/* A handle for one run (from the idle ones, or new); the context must be
 * current. Handles are not shared by concurrent runs. */
static int blas_take(rt_cublas *b, cublasHandle_t *h, kiln_status *status)
{
    *h = NULL;
    pthread_mutex_lock(&b->lock);
    if (b->nidle) *h = b->idle[--b->nidle];
    pthread_mutex_unlock(&b->lock);
    if (*h) return KILN_OK;
    cublasStatus_t r = b->Create(h);
    if (r != 0) {
        *h = NULL;
        return ir_set_status(status, r == 3 ? KILN_ERR_OUT_OF_MEMORY : KILN_ERR_INTERNAL,
                             "cuBLAS: cublasCreate failed: %s", blas_status_name(b, r));
    }
    return KILN_OK;
}

static void blas_give(rt_cublas *b, cublasHandle_t h)
{
    if (!h) return;
    pthread_mutex_lock(&b->lock);
    bool kept = b->nidle < RT_CUBLAS_POOL;
    if (kept) b->idle[b->nidle++] = h;
    pthread_mutex_unlock(&b->lock);
    if (!kept) b->Destroy(h);
}

void rt_cuda_close(rt_cuda *cu)
{
    if (!cu) return;
    if (cu->blas) {
        cu->CtxSetCurrent(cu->ctx);
        rt_cublas_close(cu->blas);
    }
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
    CUfunction *fns;           /* per kernel */
    CUdeviceptr **globals;     /* per kernel, per parameter: a module global's address (or 0) */
    CUdeviceptr *gemm_globals; /* per cuBLAS call, 3 (a, b, c): as globals */
};

void rt_cuda_unload(rt_cuda_module *m)
{
    if (!m) return;
    for (int k = 0; m->globals && k < m->prog->nkernels; k++) ir_free(m->globals[k]);
    ir_free(m->globals);
    ir_free(m->gemm_globals);
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
    m->gemm_globals = ir_calloc(3 * (size_t)p->ngemms + 1, sizeof(CUdeviceptr));
    if (!m->fns || !m->globals || !m->gemm_globals) goto oom;
    if (p->ngemms && !cu->blas) {
        ir_set_status(status, KILN_ERR_INTERNAL,
                      "CUDA: %s needs cuBLAS, which this session did not load", p->gemms[0].label);
        goto fail;
    }
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
    for (int i = 0; i < p->ngemms; i++) {
        const cg_gpu_param *ops[3] = {&p->gemms[i].a, &p->gemms[i].b, &p->gemms[i].c};
        for (int j = 0; j < 3; j++) {
            if (ops[j]->where != CG_GPU_GLOBAL) continue;
            char gname[48];
            snprintf(gname, sizeof gname, "kiln_const_%d", ops[j]->index);
            size_t bytes = 0;
            if ((r = cu->ModuleGetGlobal(&m->gemm_globals[3 * i + j], &bytes, m->mod, gname)) !=
                0) {
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

/* One cuBLAS call on the run's stream: the row-major product
 * C = alpha op(A) op(B) as the column-major C^T = op(B)^T op(A)^T, so B
 * goes first. An empty inner dimension writes zeros (cuBLAS is not asked:
 * its leading dimensions would be 0). */
static int run_gemm(rt_cuda *cu, cublasHandle_t h, CUstream stream, const cg_gpu_gemm *q,
                    CUdeviceptr a, CUdeviceptr b, CUdeviceptr c, kiln_status *status)
{
    rt_cublas *bl = cu->blas;
    size_t esz = kiln_dtype_size(q->dtype);
    if (q->k == 0) {
        size_t n = (size_t)(q->m * q->n) * esz;
        for (int64_t i = 0; i < q->batch; i++)
            CU_TRY(cu, cu->MemsetD8Async(c + (CUdeviceptr)(i * q->stride_c) * esz, 0, n, stream),
                   status, "cannot clear a product");
        return KILN_OK;
    }
    int dt = q->dtype == KILN_F64    ? CUDA_R_64F
             : q->dtype == KILN_F16  ? CUDA_R_16F
             : q->dtype == KILN_BF16 ? CUDA_R_16BF
                                     : CUDA_R_32F;
    int compute = q->dtype == KILN_F64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F;
    double alpha64 = q->alpha, beta64 = 0;
    float alpha32 = (float)q->alpha, beta32 = 0;
    const void *alpha = q->dtype == KILN_F64 ? (const void *)&alpha64 : (const void *)&alpha32;
    const void *beta = q->dtype == KILN_F64 ? (const void *)&beta64 : (const void *)&beta32;
    cublasStatus_t r = bl->SetStream(h, stream);
    if (r == 0)
        r = bl->GemmStridedBatchedEx(h, q->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                     q->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)q->n, (int)q->m,
                                     (int)q->k, alpha, (const void *)(uintptr_t)b, dt, (int)q->ldb,
                                     q->stride_b, (const void *)(uintptr_t)a, dt, (int)q->lda,
                                     q->stride_a, beta, (void *)(uintptr_t)c, dt, (int)q->ldc,
                                     q->stride_c, (int)q->batch, compute, CUBLAS_GEMM_DEFAULT);
    if (r != 0)
        return ir_set_status(status, r == 3 ? KILN_ERR_OUT_OF_MEMORY : KILN_ERR_INTERNAL,
                             "%s (on the GPU): cublasGemmStridedBatchedEx failed: %s "
                             "(m %lld, n %lld, k %lld, batch %lld)",
                             q->label, blas_status_name(bl, r), (long long)q->m, (long long)q->n,
                             (long long)q->k, (long long)q->batch);
    return KILN_OK;
}

int rt_cuda_run(rt_cuda_module *m, const void *const *inputs, void *const *outputs,
                const rt_devptr *vars, kiln_status *status)
{
    rt_cuda *cu = m->cu;
    const cg_gpu_program *p = m->prog;
    int rc = KILN_OK;
    CUstream stream = NULL;
    CUdeviceptr block = 0;
    cublasHandle_t blas = NULL;
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
    for (int st = 0; st < p->nsteps; st++) {
        if (p->steps[st].kind == CG_GPU_STEP_GEMM) {
            int gi = p->steps[st].index;
            const cg_gpu_gemm *q = &p->gemms[gi];
            CUdeviceptr a = where_is(&q->a, m->gemm_globals[3 * gi], in, out, vars, arena, errs);
            CUdeviceptr b =
                where_is(&q->b, m->gemm_globals[3 * gi + 1], in, out, vars, arena, errs);
            CUdeviceptr c =
                where_is(&q->c, m->gemm_globals[3 * gi + 2], in, out, vars, arena, errs);
            if (!blas && (rc = blas_take(cu->blas, &blas, status))) goto sync;
            if ((rc = run_gemm(cu, blas, stream, q, a + q->a_at, b + q->b_at, c + q->c_at, status)))
                goto sync;
            continue;
        }
        int k = p->steps[st].index;
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
    if (blas) blas_give(cu->blas, blas);
    if (stream) cu->StreamDestroy(stream);
    if (block) rt_cuda_free(cu, block);
    ir_free(errs_host);
    ir_free(in);
    ir_free(out);
    return rc;
}
