/* reduce.c -- placeholder definitions, to be written. */
#include "../ir.h"

static int infer_todo(ir_infer_ctx *cx) { return ir_infer_error(cx, "not implemented yet"); }

const ir_opdef ir_opdef_ReduceSum = {.name = "ReduceSum", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_ReduceMean = {.name = "ReduceMean", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_ReduceMax = {.name = "ReduceMax", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_ReduceMin = {.name = "ReduceMin", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_ReduceProd = {.name = "ReduceProd", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_ArgMax = {.name = "ArgMax", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_ArgMin = {.name = "ArgMin", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
