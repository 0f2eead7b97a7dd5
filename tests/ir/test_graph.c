/* test_graph.c -- the builder API: sources, kiln_op with attributes, the
 * errors a caller can cause (each names the op and the problem), poisoning,
 * names and lookups, value introspection, and a large graph. */
#include "common/testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ir.h"

static void test_placeholders(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    assert_non_null(g);
    assert_int_equal(kiln_graph_node_count(g), 0);
    assert_null(kiln_graph_error(g));
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 3, (int64_t[]){-1, 3, -1});
    kiln_value s = kiln_placeholder(g, "s", KILN_I64, 0, NULL);
    kiln_value e = kiln_placeholder(g, NULL, KILN_BOOL, 2, (int64_t[]){0, 2});
    assert_null(kiln_graph_error(g));
    assert_true(kiln_value_ok(x) && kiln_value_ok(s) && kiln_value_ok(e));
    assert_int_equal(x.node, 0);
    assert_int_equal(x.index, 0);
    assert_int_equal(s.node, 1);
    assert_int_equal(kiln_graph_node_count(g), 3);

    assert_int_equal(kiln_value_dtype(g, x), KILN_F32);
    assert_int_equal(kiln_value_rank(g, x), 3);
    int64_t dims[8] = {0};
    assert_int_equal(kiln_value_dims(g, x, dims), 3);
    assert_int_equal(dims[0], -1);
    assert_int_equal(dims[1], 3);
    assert_int_equal(dims[2], -1);
    assert_int_equal(kiln_value_dims(g, x, NULL), 3);
    assert_string_equal(kiln_value_node_name(g, x), "x");
    assert_string_equal(kiln_value_op_name(g, x), "Placeholder");
    assert_int_equal(kiln_value_output_count(g, x), 1);

    assert_int_equal(kiln_value_dtype(g, s), KILN_I64);
    assert_int_equal(kiln_value_rank(g, s), 0);
    assert_int_equal(kiln_value_dims(g, e, dims), 2);
    assert_int_equal(dims[0], 0);
    assert_int_equal(dims[1], 2);
    /* a generated name: op name and node index */
    assert_string_equal(kiln_value_node_name(g, e), "Placeholder_2");

    kiln_value ins[4];
    assert_int_equal(kiln_graph_inputs(g, ins, 4), 3);
    assert_int_equal(ins[2].node, 2);
    kiln_graph_free(g);
}

static void test_placeholder_errors(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value v = kiln_placeholder(g, "p", (kiln_dtype)0, 1, (int64_t[]){2});
    assert_false(kiln_value_ok(v));
    tu_assert_graph_error(g, "Placeholder 'p'", "dtype", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    v = kiln_placeholder(g, "p", KILN_F32, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1});
    assert_false(kiln_value_ok(v));
    tu_assert_graph_error(g, "Placeholder 'p'", "rank (9", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    v = kiln_placeholder(g, "p", KILN_F32, 2, NULL);
    assert_false(kiln_value_ok(v));
    tu_assert_graph_error(g, "Placeholder 'p'", "NULL", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    v = kiln_placeholder(g, "p", KILN_F32, 2, (int64_t[]){2, -2});
    assert_false(kiln_value_ok(v));
    tu_assert_graph_error(g, "Placeholder 'p'", "dim 1 is -2", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    v = kiln_placeholder(g, "", KILN_F32, 0, NULL);
    assert_false(kiln_value_ok(v));
    tu_assert_graph_error(g, "Placeholder", "name is empty", NULL);
    kiln_graph_free(g);

    /* NULL graph: an invalid value, no crash */
    assert_false(kiln_value_ok(kiln_placeholder(NULL, "x", KILN_F32, 0, NULL)));
}

static void test_constants_and_variables(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *t = tu_f32(2, (int64_t[]){2, 2}, (float[]){1, 2, 3, 4});
    kiln_value c = kiln_constant(g, "c", t);
    kiln_value v = kiln_variable(g, "v", t);
    ((float *)kiln_tensor_data(t))[0] = 100; /* the graph holds copies */
    kiln_value sc = kiln_scalar(g, KILN_I32, 7.9);
    kiln_value sh = kiln_scalar(g, KILN_F16, 1.0);
    assert_null(kiln_graph_error(g));
    assert_string_equal(kiln_value_op_name(g, c), "Constant");
    assert_string_equal(kiln_value_op_name(g, v), "Variable");
    assert_string_equal(kiln_value_op_name(g, sc), "Constant");
    assert_int_equal(kiln_value_dtype(g, c), KILN_F32);
    assert_int_equal(kiln_value_rank(g, c), 2);
    assert_int_equal(kiln_value_dtype(g, sc), KILN_I32);
    assert_int_equal(kiln_value_rank(g, sc), 0);
    const kiln_tensor *held = ir_node_tensor(ir_graph_node(g, c), "value");
    assert_non_null(held);
    tu_assert_close(held, (double[]){1, 2, 3, 4}, 4, 0, 0);
    held = ir_node_tensor(ir_graph_node(g, v), "value");
    tu_assert_close(held, (double[]){1, 2, 3, 4}, 4, 0, 0);
    held = ir_node_tensor(ir_graph_node(g, sc), "value");
    tu_assert_ints(held, (int64_t[]){7}, 1); /* converted like a store: truncated */
    held = ir_node_tensor(ir_graph_node(g, sh), "value");
    assert_int_equal(*(const uint16_t *)kiln_tensor_const_data(held), 0x3c00);

    /* The values run. */
    kiln_value y = kiln_add(g, c, v);
    kiln_tensor *r = tu_run(g, y, 0, NULL, NULL);
    tu_assert_close(r, (double[]){2, 4, 6, 8}, 4, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(t);

    /* Errors. */
    kiln_value bad = kiln_constant(g, "nothing", NULL);
    assert_false(kiln_value_ok(bad));
    tu_assert_graph_error(g, "Constant 'nothing'", "tensor is NULL", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    assert_false(kiln_value_ok(kiln_variable(g, NULL, NULL)));
    tu_assert_graph_error(g, "Variable", "tensor is NULL", NULL);
    kiln_graph_free(g);
    g = kiln_graph_new();
    assert_false(kiln_value_ok(kiln_scalar(g, (kiln_dtype)42, 1.0)));
    tu_assert_graph_error(g, "kiln_scalar", "bad dtype 42", NULL);
    kiln_graph_free(g);
    assert_false(kiln_value_ok(kiln_scalar(NULL, KILN_F32, 1)));
    assert_false(kiln_value_ok(kiln_constant(NULL, "c", NULL)));
}

static void test_op_with_attributes(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F64, 1, (int64_t[]){4});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_float(a, "alpha", 0.5);
    kiln_attrs_float(a, "alpha", 0.25); /* overwrites */
    kiln_value y = kiln_op(g, "LeakyRelu", &x, 1, a);
    kiln_attrs_free(a);
    assert_null(kiln_graph_error(g));
    assert_string_equal(kiln_value_op_name(g, y), "LeakyRelu");
    assert_true(ir_node_float(ir_graph_node(g, y), "alpha") == 0.25);

    /* An int given where the schema wants a float converts. */
    a = kiln_attrs_new();
    kiln_attrs_int(a, "min", -1);
    kiln_attrs_float(a, "max", 2.5);
    kiln_value c = kiln_op(g, "Clip", &x, 1, a);
    kiln_attrs_free(a);
    assert_null(kiln_graph_error(g));
    const ir_attr *mn = ir_node_attr(ir_graph_node(g, c), "min");
    assert_int_equal(mn->kind, IR_ATTR_FLOAT);
    assert_true(mn->u.f == -1.0);

    /* Defaults are filled. */
    kiln_value d = kiln_op(g, "Elu", &x, 1, NULL);
    assert_true(ir_node_float(ir_graph_node(g, d), "alpha") == 1.0);
    kiln_value ge = kiln_op(g, "Gelu", &x, 1, NULL);
    assert_string_equal(ir_node_string(ir_graph_node(g, ge), "approximate"), "none");
    kiln_value cl = kiln_op(g, "Clip", &x, 1, NULL);
    assert_true(isinf(ir_node_float(ir_graph_node(g, cl), "max")));

    /* Dtype attributes, given as dtype or as int. */
    a = kiln_attrs_new();
    kiln_attrs_dtype(a, "to", KILN_I32);
    kiln_value k = kiln_op(g, "Cast", &x, 1, a);
    kiln_attrs_int(a, "to", KILN_BF16); /* overwrite with a different kind */
    kiln_value k2 = kiln_op(g, "Cast", &x, 1, a);
    kiln_attrs_free(a);
    assert_int_equal(kiln_value_dtype(g, k), KILN_I32);
    assert_int_equal(kiln_value_dtype(g, k2), KILN_BF16);

    /* The attribute bag is copied: freeing it changed nothing; all run. */
    kiln_tensor *tx = tu_f64(1, (int64_t[]){4}, (double[]){-4, -1, 1, 3});
    kiln_tensor *r = tu_run(g, y, 1, &x, &tx);
    tu_assert_close(r, (double[]){-1, -0.25, 1, 3}, 4, 0, 0);
    kiln_tensor_free(r);
    r = tu_run(g, c, 1, &x, &tx);
    tu_assert_close(r, (double[]){-1, -1, 1, 2.5}, 4, 0, 0);
    kiln_tensor_free(r);
    r = tu_run(g, k, 1, &x, &tx);
    tu_assert_ints(r, (int64_t[]){-4, -1, 1, 3}, 4);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    assert_null(kiln_graph_error(g));
    kiln_graph_free(g);
}

static void test_attrs_bag(void **state)
{
    (void)state;
    kiln_attrs *a = kiln_attrs_new();
    assert_non_null(a);
    kiln_attrs_int(a, "i", 3);
    kiln_attrs_string(a, "s", "hello");
    kiln_attrs_ints(a, "is", (int64_t[]){1, 2, 3}, 3);
    kiln_attrs_floats(a, "fs", (double[]){0.5}, 1);
    kiln_attrs_ints(a, "empty", NULL, 0);
    kiln_tensor *t = tu_i64(1, (int64_t[]){2}, (int64_t[]){5, 6});
    kiln_attrs_tensor(a, "t", t);
    kiln_tensor_free(t); /* the bag has its own copy */
    kiln_attrs_string(a, "s", "bye"); /* overwrite */
    for (int i = 0; i < 20; i++) { /* grow past the first capacity */
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        kiln_attrs_int(a, name, i);
    }
    assert_false(a->oom);
    assert_int_equal(a->n, 26);
    assert_string_equal(a->names[1], "s");
    assert_string_equal(a->vals[1].u.s, "bye");
    assert_int_equal(a->vals[2].n, 3);
    assert_int_equal(a->vals[2].u.ints[2], 3);
    assert_int_equal(a->vals[4].n, 0);
    assert_int_equal(((int64_t *)a->vals[5].u.t->data)[1], 6);
    /* Setters on a NULL bag do nothing. */
    kiln_attrs_int(NULL, "x", 1);
    kiln_attrs_string(NULL, "x", NULL);
    kiln_attrs_tensor(NULL, "x", NULL);
    /* Bad arguments mark the bag; kiln_op then reports it. */
    kiln_attrs_ints(a, "bad", NULL, 2);
    assert_true(a->oom);
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 0, NULL);
    kiln_value y = kiln_op(g, "Relu", &x, 1, a);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "Relu", "attribute bag is incomplete", NULL);
    kiln_graph_free(g);
    kiln_attrs_free(a);

    a = kiln_attrs_new();
    kiln_attrs_int(a, NULL, 1); /* a NULL name */
    assert_true(a->oom);
    kiln_attrs_free(a);
}

static void test_op_errors(void **state)
{
    (void)state;
    kiln_graph *g;
    kiln_value x, y;

    /* unknown op */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    y = kiln_op(g, "Frobnicate", &x, 1, NULL);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "unknown op 'Frobnicate'", NULL);
    assert_int_equal(g->error_code, KILN_ERR_NOT_FOUND);
    assert_int_equal(kiln_graph_node_count(g), 1); /* nothing added */
    kiln_graph_free(g);
    g = kiln_graph_new();
    y = kiln_op(g, NULL, NULL, 0, NULL);
    tu_assert_graph_error(g, "unknown op '(null)'", NULL);
    kiln_graph_free(g);

    /* wrong input counts */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    y = kiln_op(g, "Add", &x, 1, NULL);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "Add 'Add_1'", "takes 2 inputs, got 1", NULL);
    kiln_graph_free(g);
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    y = kiln_op(g, "Relu", (kiln_value[]){x, x, x}, 3, NULL);
    tu_assert_graph_error(g, "Relu", "takes 1 inputs, got 3", NULL);
    kiln_graph_free(g);
    g = kiln_graph_new();
    y = kiln_op(g, "Where", NULL, -1, NULL);
    tu_assert_graph_error(g, "Where", "got -1", NULL);
    kiln_graph_free(g);

    /* unknown attribute: the message lists what the op takes */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    kiln_attrs *a = kiln_attrs_new();
    kiln_attrs_float(a, "beta", 1);
    y = kiln_op(g, "Clip", &x, 1, a);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "Clip", "unknown attribute 'beta'", "Clip takes: min, max", NULL);
    kiln_graph_free(g);
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    y = kiln_op(g, "Relu", &x, 1, a);
    tu_assert_graph_error(g, "Relu", "unknown attribute 'beta'", "no attributes", NULL);
    kiln_attrs_free(a);
    kiln_graph_free(g);

    /* wrong attribute kind */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    a = kiln_attrs_new();
    kiln_attrs_string(a, "alpha", "big");
    y = kiln_op(g, "LeakyRelu", &x, 1, a);
    kiln_attrs_free(a);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "LeakyRelu", "attribute 'alpha' must be float, got string", NULL);
    kiln_graph_free(g);
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    a = kiln_attrs_new();
    kiln_attrs_float(a, "to", 1.0);
    y = kiln_op(g, "Cast", &x, 1, a);
    kiln_attrs_free(a);
    tu_assert_graph_error(g, "Cast", "attribute 'to' must be dtype, got float", NULL);
    kiln_graph_free(g);
    /* an int that is not a dtype */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    a = kiln_attrs_new();
    kiln_attrs_int(a, "to", 77);
    y = kiln_op(g, "Cast", &x, 1, a);
    kiln_attrs_free(a);
    tu_assert_graph_error(g, "Cast", "'to' is not a dtype (77)", NULL);
    kiln_graph_free(g);

    /* missing required attribute */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    y = kiln_op(g, "Cast", &x, 1, NULL);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "Cast 'Cast_1'", "missing required attribute 'to' (dtype)", NULL);
    kiln_graph_free(g);

    /* NULL graph, NULL inputs */
    assert_false(kiln_value_ok(kiln_op(NULL, "Add", NULL, 0, NULL)));
    assert_false(kiln_value_ok(kiln_add(NULL, kiln_value_invalid(), kiln_value_invalid())));
    g = kiln_graph_new();
    y = kiln_op(g, "Add", NULL, 2, NULL);
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "Add", "inputs is NULL", NULL);
    kiln_graph_free(g);

    /* values that are not values of this graph */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    y = kiln_add(g, x, (kiln_value){5, 0}); /* node out of range (another graph's) */
    assert_false(kiln_value_ok(y));
    tu_assert_graph_error(g, "Add", "input 1 is not a valid value of this graph (5:0)", NULL);
    kiln_graph_free(g);
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    y = kiln_relu(g, (kiln_value){0, 1}); /* output index out of range */
    tu_assert_graph_error(g, "Relu", "input 0 is not a valid value of this graph (0:1)", NULL);
    kiln_graph_free(g);
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    y = kiln_relu(g, (kiln_value){-7, 0});
    tu_assert_graph_error(g, "Relu", "(-7:0)", NULL);
    kiln_graph_free(g);

    /* an inference error: names the op, the node, the problem, the types */
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    kiln_value b = kiln_placeholder(g, "b", KILN_F32, 1, (int64_t[]){4});
    y = kiln_add(g, x, b);
    tu_assert_graph_error(g, "Add 'Add_2'", "broadcast", "f32[3]", "f32[4]", NULL);
    assert_int_equal(kiln_graph_node_count(g), 2);
    kiln_graph_free(g);
}

static void test_poisoning(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    kiln_value bad = kiln_op(g, "Cast", &x, 1, NULL); /* first error */
    assert_false(kiln_value_ok(bad));
    char first[256];
    snprintf(first, sizeof first, "%s", kiln_graph_error(g));
    /* everything built from the invalid value is invalid too */
    kiln_value y = kiln_relu(g, bad);
    kiln_value z = kiln_add(g, y, x);
    kiln_value w = kiln_leaky_relu(g, z, 0.3);
    kiln_value n = kiln_name(g, w, "w");
    assert_false(kiln_value_ok(y) || kiln_value_ok(z) || kiln_value_ok(w) || kiln_value_ok(n));
    /* later, unrelated errors do not replace the first */
    kiln_op(g, "NoSuchOp", &x, 1, NULL);
    kiln_placeholder(g, "x", KILN_F32, 0, NULL); /* duplicate name */
    assert_string_equal(kiln_graph_error(g), first);
    tu_assert_graph_error(g, "Cast", "missing required attribute 'to'", NULL);
    /* introspection of invalid values */
    assert_int_equal(kiln_value_dtype(g, w), 0);
    assert_int_equal(kiln_value_rank(g, w), -1);
    assert_int_equal(kiln_value_dims(g, w, NULL), -1);
    assert_null(kiln_value_node_name(g, w));
    assert_null(kiln_value_op_name(g, w));
    assert_int_equal(kiln_value_output_count(g, w), 0);
    assert_int_equal(kiln_graph_node_count(g), 1);
    /* the graph cannot be run or verified */
    kiln_status *st = kiln_status_new();
    assert_null(kiln_session_new(g, NULL, st));
    assert_non_null(strstr(kiln_status_message(st), first));
    assert_int_not_equal(kiln_graph_verify(g, st), KILN_OK);
    assert_non_null(strstr(kiln_status_message(st), first));
    kiln_status_free(st);
    kiln_graph_free(g);

    kiln_value inv = kiln_value_invalid();
    assert_false(kiln_value_ok(inv));
    assert_true(inv.node < 0);
    assert_string_equal(kiln_graph_error(NULL), "graph is NULL");
    assert_int_equal(kiln_graph_node_count(NULL), 0);
}

static void test_names(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){3});
    kiln_value y = kiln_relu(g, x);
    assert_string_equal(kiln_value_node_name(g, y), "Relu_1");
    assert_int_equal(kiln_graph_find(g, "Relu_1").node, y.node);

    /* rename: the new name finds it, the old one no longer does */
    kiln_value r = kiln_name(g, y, "act");
    assert_int_equal(r.node, y.node);
    assert_int_equal(r.index, y.index);
    assert_string_equal(kiln_value_node_name(g, y), "act");
    assert_int_equal(kiln_graph_find(g, "act").node, y.node);
    assert_false(kiln_value_ok(kiln_graph_find(g, "Relu_1")));
    /* naming with its own name is a no-op; renaming again works */
    assert_int_equal(kiln_name(g, y, "act").node, y.node);
    kiln_name(g, y, "act2");
    assert_false(kiln_value_ok(kiln_graph_find(g, "act")));
    assert_int_equal(kiln_graph_find(g, "act2").node, y.node);
    /* a freed name can be taken by another node */
    kiln_value z = kiln_placeholder(g, "act", KILN_F32, 0, NULL);
    assert_true(kiln_value_ok(z));
    assert_int_equal(kiln_graph_find(g, "act").node, z.node);
    assert_null(kiln_graph_error(g));

    /* lookups that find nothing */
    assert_false(kiln_value_ok(kiln_graph_find(g, "missing")));
    assert_false(kiln_value_ok(kiln_graph_find(g, "")));
    assert_false(kiln_value_ok(kiln_graph_find(g, NULL)));
    assert_false(kiln_value_ok(kiln_graph_find(NULL, "x")));

    /* the verifier agrees with the name map after all that */
    kiln_status *st = kiln_status_new();
    assert_int_equal(kiln_graph_verify(g, st), KILN_OK);
    kiln_status_free(st);

    /* duplicate name */
    kiln_value d = kiln_name(g, y, "x");
    assert_false(kiln_value_ok(d));
    tu_assert_graph_error(g, "kiln_name", "'act2'", "'x'", "already used", NULL);
    assert_string_equal(kiln_value_node_name(g, y), "act2"); /* unchanged */
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 0, NULL);
    kiln_placeholder(g, "x", KILN_F32, 0, NULL);
    tu_assert_graph_error(g, "Placeholder 'x'", "already used", NULL);
    kiln_graph_free(g);

    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 0, NULL);
    assert_false(kiln_value_ok(kiln_name(g, x, "")));
    tu_assert_graph_error(g, "kiln_name", "empty name", NULL);
    kiln_graph_free(g);
    g = kiln_graph_new();
    x = kiln_placeholder(g, "x", KILN_F32, 0, NULL);
    assert_false(kiln_value_ok(kiln_name(g, x, NULL)));
    kiln_graph_free(g);
    g = kiln_graph_new();
    assert_false(kiln_value_ok(kiln_name(g, (kiln_value){3, 0}, "q")));
    tu_assert_graph_error(g, "kiln_name('q')", "not a valid value", NULL);
    kiln_graph_free(g);
    assert_false(kiln_value_ok(kiln_name(NULL, x, "q")));
}

static void test_auto_names_unique(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    /* take the name that node 2 would be given */
    kiln_value x = kiln_placeholder(g, "Relu_1", KILN_F32, 0, NULL);
    kiln_value t = kiln_placeholder(g, "Relu_2", KILN_F32, 0, NULL);
    kiln_value y = kiln_relu(g, x); /* node 2 */
    assert_null(kiln_graph_error(g));
    assert_string_equal(kiln_value_node_name(g, y), "Relu_2_1");
    /* and the names node 3 would try first and second */
    kiln_name(g, t, "Relu_3");
    kiln_value u = kiln_placeholder(g, "Relu_3_1", KILN_F32, 0, NULL); /* node 3 */
    kiln_value w = kiln_relu(g, y);                                   /* node 4 */
    assert_string_equal(kiln_value_node_name(g, w), "Relu_4");
    kiln_name(g, u, "Relu_5");
    kiln_name(g, w, "Relu_5_1");
    kiln_value w2 = kiln_relu(g, w); /* node 5: Relu_5 and Relu_5_1 are taken */
    assert_string_equal(kiln_value_node_name(g, w2), "Relu_5_2");
    assert_null(kiln_graph_error(g));
    for (int i = 0; i < kiln_graph_node_count(g); i++)
        assert_int_equal(kiln_graph_find(g, g->nodes[i].name).node, i);
    kiln_graph_free(g);
}

static void test_auto_names_many(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, NULL, KILN_F32, 0, NULL);
    kiln_value v = x;
    for (int i = 0; i < 200; i++) v = kiln_relu(g, v);
    assert_null(kiln_graph_error(g));
    for (int i = 0; i < kiln_graph_node_count(g); i++) {
        const char *ni = g->nodes[i].name;
        assert_int_equal(kiln_graph_find(g, ni).node, i);
    }
    kiln_graph_free(g);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_large_graph(void **state)
{
    (void)state;
    enum { N = 10000 };
    double t0 = now_s();
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 1, (int64_t[]){-1});
    kiln_value one = kiln_scalar(g, KILN_F32, 1.0);
    kiln_value v = x;
    char name[32];
    for (int i = 0; i < N; i++) {
        v = kiln_add(g, v, one);
        snprintf(name, sizeof name, "step%d", i);
        kiln_name(g, v, name);
    }
    assert_null(kiln_graph_error(g));
    assert_int_equal(kiln_graph_node_count(g), N + 2);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "step%d", i);
        kiln_value f = kiln_graph_find(g, name);
        if (f.node != i + 2) fail_msg("find('%s') = %d, want %d", name, f.node, i + 2);
    }
    snprintf(name, sizeof name, "step%d", N);
    assert_false(kiln_value_ok(kiln_graph_find(g, name)));
    kiln_status *st = kiln_status_new();
    assert_int_equal(kiln_graph_verify(g, st), KILN_OK);
    kiln_status_free(st);
    double t1 = now_s();
    /* generous: milliseconds natively, and still fast under valgrind */
    if (t1 - t0 > 20.0) fail_msg("building and finding %d nodes took %.1f s", N, t1 - t0);

    kiln_tensor *tx = tu_f32(1, (int64_t[]){2}, (float[]){0.5f, -3});
    kiln_tensor *r = tu_run(g, v, 1, &x, &tx);
    tu_assert_close(r, (double[]){N + 0.5, N - 3}, 2, 0, 0);
    kiln_tensor_free(r);
    kiln_tensor_free(tx);
    kiln_graph_free(g);
}

static void test_outputs_and_inputs(void **state)
{
    (void)state;
    kiln_graph *g = kiln_graph_new();
    kiln_value x = kiln_placeholder(g, "x", KILN_F32, 0, NULL);
    kiln_value c = kiln_scalar(g, KILN_F32, 2);
    kiln_value y = kiln_mul(g, x, c);
    kiln_value z = kiln_relu(g, y);
    kiln_value w = kiln_neg(g, y);
    kiln_value out[4];
    /* no declared outputs: the sinks of non-source nodes */
    assert_int_equal(kiln_graph_outputs(g, out, 4), 2);
    assert_int_equal(out[0].node, z.node);
    assert_int_equal(out[1].node, w.node);
    assert_int_equal(kiln_graph_outputs(g, out, 1), 2); /* count even when max is smaller */
    kiln_graph_set_outputs(g, (kiln_value[]){w}, 1);
    assert_int_equal(kiln_graph_outputs(g, out, 4), 1);
    assert_int_equal(out[0].node, w.node);
    assert_int_equal(kiln_graph_inputs(g, out, 4), 1);
    assert_int_equal(out[0].node, x.node);
    assert_null(kiln_graph_error(g));
    kiln_graph_set_outputs(g, (kiln_value[]){{99, 0}}, 1);
    tu_assert_graph_error(g, "kiln_graph_set_outputs", "output 0 (99:0)", NULL);
    kiln_graph_free(g);
    assert_int_equal(kiln_graph_outputs(NULL, out, 4), 0);
    assert_int_equal(kiln_graph_inputs(NULL, out, 4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_placeholders),
        TU_TEST(test_placeholder_errors),
        TU_TEST(test_constants_and_variables),
        TU_TEST(test_op_with_attributes),
        TU_TEST(test_attrs_bag),
        TU_TEST(test_op_errors),
        TU_TEST(test_poisoning),
        TU_TEST(test_names),
        TU_TEST(test_auto_names_unique),
        TU_TEST(test_auto_names_many),
        TU_TEST(test_large_graph),
        TU_TEST(test_outputs_and_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
