/* test_registry.c -- every op in the registry has the entries it should:
 * a name that looks itself up, inference, a reference kernel (sources are
 * bound by the executor instead), a doc line, and a sane schema. */
#include "common/testutil.h"

#include <string.h>

#include "ir.h"

static void test_every_op_complete(void **state)
{
    (void)state;
    for (int i = 0; i < IR_OP_COUNT; i++) {
        const ir_opdef *d = ir_op_def((ir_op)i);
        assert_non_null(d);
        assert_non_null(d->name);
        if (ir_op_lookup(d->name) != i) fail_msg("op %d '%s' does not look itself up", i, d->name);
        if (!d->infer) fail_msg("op '%s' has no inference", d->name);
        if (!d->kernel && !(d->flags & IR_OPF_SOURCE)) fail_msg("op '%s' has no reference kernel", d->name);
        if (!d->doc || !*d->doc) fail_msg("op '%s' has no doc line", d->name);
        if (d->max_inputs >= 0 && d->max_inputs < d->min_inputs) fail_msg("op '%s' arity", d->name);
        if (d->noutputs == 0) fail_msg("op '%s' has no outputs", d->name);
        if ((d->nattrs > 0) != (d->attrs != NULL)) fail_msg("op '%s' attribute table", d->name);
        for (int a = 0; a < d->nattrs; a++) {
            assert_non_null(d->attrs[a].name);
            for (int b = 0; b < a; b++)
                if (strcmp(d->attrs[a].name, d->attrs[b].name) == 0)
                    fail_msg("op '%s' lists attribute '%s' twice", d->name, d->attrs[a].name);
        }
    }
}

static void test_lookup(void **state)
{
    (void)state;
    assert_int_equal(ir_op_lookup("MatMul"), IR_OP_MatMul);
    assert_int_equal(ir_op_lookup("Conv2D"), IR_OP_Conv2D);
    assert_int_equal(ir_op_lookup("matmul"), -1);
    assert_int_equal(ir_op_lookup(""), -1);
    assert_int_equal(ir_op_lookup(NULL), -1);
    assert_null(ir_op_def((ir_op)IR_OP_COUNT));
    assert_true(ir_op_attr_index(ir_op_def(IR_OP_Gemm), "transB") >= 0);
    assert_int_equal(ir_op_attr_index(ir_op_def(IR_OP_Gemm), "nope"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_every_op_complete),
        TU_TEST(test_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
