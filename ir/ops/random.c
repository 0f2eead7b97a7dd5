/* random.c -- placeholder definitions, to be written. */
#include "../ir.h"

static int infer_todo(ir_infer_ctx *cx) { return ir_infer_error(cx, "not implemented yet"); }

const ir_opdef ir_opdef_RandomUniform = {.name = "RandomUniform", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_RandomNormal = {.name = "RandomNormal", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};

double ir_random_uniform(uint64_t seed, uint64_t counter, uint64_t i) { (void)seed; (void)counter; (void)i; return 0; }
