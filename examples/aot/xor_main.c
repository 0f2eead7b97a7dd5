/* xor_main.c -- runs the XOR network that examples/mlp.c compiled ahead of
 * time, with nothing from kiln but the generated header and library. */
#include <stdio.h>

#include "xor.h"

int main(void)
{
    float x[XOR_INPUT_X_SIZE] = {0, 0, 0, 1, 1, 0, 1, 1};
    float y[XOR_OUTPUT_Y_SIZE];
    xor_inputs in = {x};
    xor_outputs out = {y};
    int rc = xor_run(&in, &out, NULL);
    if (rc) {
        fprintf(stderr, "xor_run: %s\n", xor_error(rc));
        return 1;
    }
    printf("from libxor.so (arena %d bytes):\n", XOR_ARENA_BYTES);
    for (int i = 0; i < 4; i++) printf(" %g xor %g = %g\n", x[2 * i], x[2 * i + 1], y[i]);
    for (int i = 0; i < 4; i++)
        if (y[i] != (float)((int)x[2 * i] ^ (int)x[2 * i + 1])) return 1;
    return 0;
}
