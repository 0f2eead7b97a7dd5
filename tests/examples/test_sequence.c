/* test_sequence.c -- runs examples/sequence.c (a GRU unrolled over time and
 * trained with kiln_minimize) in its --quick mode: it must reach its
 * held-out error threshold and leak nothing. The example is compiled into
 * this test, its main renamed. */
#include "common/testutil.h"

int sequence_main(int argc, char **argv);
#define main sequence_main
#include "../../examples/sequence.c"
#undef main

static void test_sequence_quick(void **state)
{
    (void)state;
    char arg0[] = "sequence", arg1[] = "--quick";
    char *argv[] = {arg0, arg1, NULL};
    assert_int_equal(sequence_main(2, argv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_sequence_quick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
