/* pool.c -- placeholder definitions, to be written. */
#include "../ir.h"

static int infer_todo(ir_infer_ctx *cx) { return ir_infer_error(cx, "not implemented yet"); }

const ir_opdef ir_opdef_MaxPool2D = {.name = "MaxPool2D", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_AveragePool2D = {.name = "AveragePool2D", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_GlobalAveragePool = {.name = "GlobalAveragePool", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
