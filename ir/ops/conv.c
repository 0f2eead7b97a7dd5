/* conv.c -- placeholder definitions, to be written. */
#include "../ir.h"

static int infer_todo(ir_infer_ctx *cx) { return ir_infer_error(cx, "not implemented yet"); }

const ir_opdef ir_opdef_Conv2D = {.name = "Conv2D", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_ConvTranspose2D = {.name = "ConvTranspose2D", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
