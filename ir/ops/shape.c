/* shape.c -- placeholder definitions, to be written. */
#include "../ir.h"

static int infer_todo(ir_infer_ctx *cx) { return ir_infer_error(cx, "not implemented yet"); }

const ir_opdef ir_opdef_Transpose = {.name = "Transpose", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_Reshape = {.name = "Reshape", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_Flatten = {.name = "Flatten", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_Squeeze = {.name = "Squeeze", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_Unsqueeze = {.name = "Unsqueeze", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_Concat = {.name = "Concat", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_Split = {.name = "Split", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_Slice = {.name = "Slice", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_Gather = {.name = "Gather", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_Pad = {.name = "Pad", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_Expand = {.name = "Expand", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
const ir_opdef ir_opdef_Tile = {.name = "Tile", .min_inputs = 0, .max_inputs = -1, .noutputs = 1, .infer = infer_todo};
