/* fuzz_onnx.c -- libFuzzer target over the ONNX importer: any byte string,
 * written to a file, must import or fail with a status; never crash, hang,
 * leak or allocate without bound. `make fuzz-onnx` builds it with ASan and
 * runs it from a corpus seeded with ../shared/onnx-tests models. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kiln.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/kiln-fuzz-onnx-%d.onnx", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    kiln_status *st = kiln_status_new();
    kiln_graph *g = kiln_import_onnx(path, NULL, st);
    if (g) {
        /* what imported must also print and verify */
        char *text = kiln_graph_to_text(g);
        kiln_free(text);
        kiln_graph_verify(g, st);
    }
    kiln_graph_free(g);
    kiln_status_free(st);
    return 0;
}
