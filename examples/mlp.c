/* mlp.c -- the demo: a two-layer network built with kiln's C API, run in a
 * session (compiled to native code on the fly), then compiled ahead of time
 * into a shared object with a C header, which examples/aot/xor_main.c uses
 * with no other kiln file. Its weights are set by hand so that it computes
 * XOR:
 *
 *   h = relu(x W1 + b1),  W1 = [[1, 1], [1, 1]], b1 = [0, -1]
 *   y = h W2 + b2,        W2 = [[1], [-2]],     b2 = [0]
 *
 * The batch dim is symbolic (-1), so one graph serves any batch size. */
#include <stdio.h>

#include "kiln.h"

int main(int argc, char **argv)
{
    /* Where to put the compiled library and header (make demo passes one). */
    const char *outdir = argc > 1 ? argv[1] : NULL;
    int rc = 1;
    kiln_graph *g = kiln_graph_new();
    kiln_status *st = kiln_status_new();
    kiln_session *s = NULL;
    kiln_tensor *w1 = kiln_tensor_from_data(KILN_F32, 2, (int64_t[]){2, 2}, (float[]){1, 1, 1, 1});
    kiln_tensor *b1 = kiln_tensor_from_data(KILN_F32, 1, (int64_t[]){2}, (float[]){0, -1});
    kiln_tensor *w2 = kiln_tensor_from_data(KILN_F32, 2, (int64_t[]){2, 1}, (float[]){1, -2});
    kiln_tensor *b2 = kiln_tensor_from_data(KILN_F32, 1, (int64_t[]){1}, (float[]){0});
    kiln_tensor *x = kiln_tensor_from_data(KILN_F32, 2, (int64_t[]){4, 2},
                                           (float[]){0, 0, 0, 1, 1, 0, 1, 1});
    kiln_tensor *y = NULL;

    /* Build: every builder returns a value; errors are collected on g. */
    kiln_value in = kiln_placeholder(g, "x", KILN_F32, 2, (int64_t[]){-1, 2});
    kiln_value h = kiln_relu(g, kiln_add(g, kiln_matmul(g, in, kiln_constant(g, "W1", w1)),
                                         kiln_constant(g, "b1", b1)));
    kiln_value out = kiln_add(g, kiln_matmul(g, h, kiln_constant(g, "W2", w2)),
                              kiln_constant(g, "b2", b2));
    kiln_name(g, out, "y");
    if (kiln_graph_error(g)) {
        fprintf(stderr, "building the graph failed: %s\n", kiln_graph_error(g));
        goto done;
    }

    char *text = kiln_graph_to_text(g);
    printf("graph:\n%s\n", text ? text : "(out of memory)");
    kiln_free(text);

    s = kiln_session_new(g, NULL, st);
    if (!s) {
        fprintf(stderr, "session: %s\n", kiln_status_message(st));
        goto done;
    }
    kiln_session_run(s, &in, &x, 1, &out, &y, 1, NULL, 0, st);
    if (kiln_status_code(st) != KILN_OK) {
        fprintf(stderr, "run: %s\n", kiln_status_message(st));
        goto done;
    }

    const float *xv = kiln_tensor_data(x), *yv = kiln_tensor_data(y);
    printf(" a  b | a xor b\n");
    for (int i = 0; i < 4; i++) printf(" %g  %g |   %g\n", xv[2 * i], xv[2 * i + 1], yv[i]);
    rc = 0;
    for (int i = 0; i < 4; i++)
        if (yv[i] != (float)(((int)xv[2 * i]) ^ ((int)xv[2 * i + 1]))) rc = 1;
    printf(rc ? "MISMATCH\n" : "ok: the network computes xor\n");

    if (!rc && outdir) {
        /* Ahead of time: batch 4, the library libxor.so and its header xor.h. */
        char so[512], header[512];
        snprintf(so, sizeof so, "%s/libxor.so", outdir);
        snprintf(header, sizeof header, "%s/xor.h", outdir);
        kiln_compile_options o;
        kiln_compile_options_init(&o);
        o.name = "xor";
        o.header = header;
        o.symbolic_dim = 4;
        kiln_compile_library(g, &in, 1, &out, 1, so, &o, st);
        if (kiln_status_code(st) != KILN_OK) {
            fprintf(stderr, "compile: %s\n", kiln_status_message(st));
            rc = 1;
        } else {
            printf("compiled %s and %s\n", so, header);
        }
    }

done:
    kiln_tensor_free(y);
    kiln_tensor_free(x);
    kiln_tensor_free(w1);
    kiln_tensor_free(b1);
    kiln_tensor_free(w2);
    kiln_tensor_free(b2);
    kiln_session_free(s);
    kiln_status_free(st);
    kiln_graph_free(g);
    return rc;
}
