/* rt_cuda.h -- the CUDA runtime layer (cuda.c, cuda_session.c). The driver
 * (libcuda.so.1) is loaded with dlopen when a session asks for the GPU, so
 * kiln links and runs without it; a machine without it gets a status
 * "no CUDA driver found (...)". Not a public header. */
#ifndef KILN_RT_CUDA_H
#define KILN_RT_CUDA_H

#include <stdint.h>

#include "../codegen/cg_gpu.h"
#include "runtime.h"

typedef unsigned long long rt_devptr; /* CUdeviceptr */

/* The driver: its library handle, the entry points kiln uses and the
 * primary context of one device. */
typedef struct rt_cuda rt_cuda;

/* Loads the driver library `lib` (NULL: "libcuda.so.1"), resolves the
 * driver API, initializes it and retains device `ordinal`'s primary
 * context. NULL with status set when anything is missing:
 * "no CUDA driver found (libcuda.so.1: <dlerror>)", a missing entry point,
 * or the driver's own error (no device, ...). */
rt_cuda *rt_cuda_open(const char *lib, int ordinal, kiln_status *status);
void rt_cuda_close(rt_cuda *cu);
/* "NVIDIA H100 80GB HBM3 (sm_90)" */
const char *rt_cuda_device_name(const rt_cuda *cu);
/* The device's compute capability as 10 * major + minor (90 for sm_90). */
int rt_cuda_sm(const rt_cuda *cu);

/* cuBLAS, loaded with dlopen like the driver: `lib`, or NULL for the
 * first of libcublas.so.12, libcublas.so.13, libcublas.so that loads.
 * NULL with status "cuBLAS not found (libcublas.so.12: <dlerror>)" or a
 * missing entry point named. Thread-safe: concurrent runs take handles of
 * their own from a small pool. */
typedef struct rt_cublas rt_cublas;
rt_cublas *rt_cublas_open(const char *lib, kiln_status *status);
void rt_cublas_close(rt_cublas *b);
/* Loads cuBLAS for cu's programs (once; cu owns it). */
int rt_cuda_load_cublas(rt_cuda *cu, const char *lib, kiln_status *status);

/* Device memory (the calling thread is bound to the context). */
int rt_cuda_alloc(rt_cuda *cu, size_t bytes, rt_devptr *p, kiln_status *status);
void rt_cuda_free(rt_cuda *cu, rt_devptr p);
int rt_cuda_upload(rt_cuda *cu, rt_devptr dst, const void *src, size_t bytes, kiln_status *status);
int rt_cuda_download(rt_cuda *cu, void *dst, rt_devptr src, size_t bytes, kiln_status *status);

/* A program loaded on the device: its PTX module (cuModuleLoadDataEx; the
 * JIT's error log goes into status) and its kernels' handles. */
typedef struct rt_cuda_module rt_cuda_module;
rt_cuda_module *rt_cuda_load(rt_cuda *cu, const cg_gpu_program *p, kiln_status *status);
void rt_cuda_unload(rt_cuda_module *m);

/* Runs a loaded program: copies inputs[i] (host) to the device, runs the
 * steps (kernel launches and cuBLAS calls) in order on a stream of its own with a device arena of
 * the planned size, copies each fetched value to outputs[i] (host) and checks the kernels' error
 * words. vars[k] are the device copies of the variables. Safe from several threads at once (each
 * run has its own stream and device memory). */
int rt_cuda_run(rt_cuda_module *m, const void *const *inputs, void *const *outputs,
                const rt_devptr *vars, kiln_status *status);

/* Sessions on the GPU (cuda_session.c). */
int rt_cuda_session_init(kiln_session *s, kiln_status *status);
void rt_cuda_session_free(kiln_session *s);
int rt_cuda_session_run(kiln_session *s, const rt_run_request *req, kiln_status *status);
/* Copies the session's variables (s->vars) to their device copies again,
 * after they changed on the host (a restored checkpoint). The caller
 * holds vars_lock exclusively. */
int rt_cuda_session_upload_vars(kiln_session *s, kiln_status *status);

#endif
