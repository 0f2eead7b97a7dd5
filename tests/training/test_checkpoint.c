/* test_checkpoint.c -- kiln_session_save_variables / _restore_variables:
 * the byte layout (read back here independently, CRC-32 included), round
 * trips through training, mismatched names, dtypes and shapes, every
 * truncation and corrupted bytes (errors, variables unchanged), and a save
 * that "crashes" part-way leaving the old checkpoint intact. */
#include "common/testutil.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../runtime/rt_checkpoint.h"

static char dir[64];
static char path[128];

static void make_dir(void)
{
    strcpy(dir, "/tmp/kiln-ckpt-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static unsigned char *slurp(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void spit(const char *p, const unsigned char *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* Bitwise CRC-32 (reflected, polynomial 0xEDB88320), independent of the
 * library's table version. */
static uint32_t crc32_ref(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* A graph with w f32[2,3], b f64[3] and n i64[] and Assigns that set them
 * to "trained" values. */
typedef struct {
    kiln_graph *g;
    kiln_value w, b, n, set;
} model;

static model make_model(int w_rows, int with_n)
{
    model m;
    m.g = kiln_graph_new();
    int64_t dw[2] = {w_rows, 6 / w_rows}, db = 3;
    kiln_tensor *w0 = kiln_tensor_new(KILN_F32, 2, dw), *b0 = kiln_tensor_new(KILN_F64, 1, &db);
    kiln_tensor *n0 = tu_i64(0, NULL, (int64_t[]){0});
    m.w = kiln_variable(m.g, "w", w0);
    m.b = kiln_variable(m.g, "b", b0);
    m.n = with_n ? kiln_variable(m.g, "n", n0) : kiln_value_invalid();
    kiln_tensor *w1 = tu_f32(2, dw, (float[]){1.5f, -2, 3, 4, 5, 6.25f});
    kiln_tensor *b1 = tu_f64(1, &db, (double[]){0.1, 0.2, -0.3});
    kiln_value a1 = kiln_assign(m.g, m.w, kiln_constant(m.g, "w1", w1));
    kiln_value a2 = kiln_assign(m.g, m.b, kiln_constant(m.g, "b1", b1));
    kiln_value parts[3] = {kiln_reshape(m.g, a1, (int64_t[]){-1}, 1),
                           kiln_cast(m.g, a2, KILN_F32), kiln_value_invalid()};
    int np = 2;
    if (with_n) {
        kiln_value a3 = kiln_assign(m.g, m.n, kiln_scalar(m.g, KILN_I64, 42));
        parts[np++] = kiln_cast(m.g, kiln_reshape(m.g, a3, (int64_t[]){1}, 1), KILN_F32);
    }
    m.set = kiln_concat(m.g, parts, np, 0);
    assert_null(kiln_graph_error(m.g));
    kiln_tensor_free(w0);
    kiln_tensor_free(b0);
    kiln_tensor_free(n0);
    kiln_tensor_free(w1);
    kiln_tensor_free(b1);
    return m;
}

static void assert_var(kiln_session *s, kiln_value v, const double *want, size_t n)
{
    kiln_tensor *t = kiln_session_variable(s, v, NULL);
    assert_non_null(t);
    if (kiln_tensor_dtype(t) == KILN_I64) {
        int64_t w[8];
        for (size_t i = 0; i < n; i++) w[i] = (int64_t)want[i];
        tu_assert_ints(t, w, n);
    } else {
        tu_assert_close(t, want, n, 0, 0);
    }
    kiln_tensor_free(t);
}

static const double W1[6] = {1.5, -2, 3, 4, 5, 6.25}, B1[3] = {0.1, 0.2, -0.3}, N1[1] = {42};
static const double ZERO[6] = {0};

static void save_trained(model *m)
{
    kiln_session *s = kiln_session_new(m->g, NULL, NULL);
    assert_non_null(s);
    kiln_session_run(s, NULL, NULL, 0, NULL, NULL, 0, &m->set, 1, NULL);
    kiln_status *st = kiln_status_new();
    assert_int_equal(kiln_session_save_variables(s, path, st), KILN_OK);
    assert_int_equal(kiln_status_code(st), KILN_OK);
    kiln_status_free(st);
    kiln_session_free(s);
}

static void test_format_and_round_trip(void **state)
{
    (void)state;
    make_dir();
    model m = make_model(2, 1);
    save_trained(&m);
    /* The layout, read back independently. */
    size_t n;
    unsigned char *b = slurp(path, &n);
    size_t want_n = 8 + 4 + 4 + (4 + 1 + 4 + 4 + 16 + 8 + 24) + (4 + 1 + 4 + 4 + 8 + 8 + 24) +
                    (4 + 1 + 4 + 4 + 0 + 8 + 8) + 4;
    assert_int_equal(n, want_n);
    assert_memory_equal(b, "KILNCKPT", 8);
    assert_int_equal(le32(b + 8), 1);
    assert_int_equal(le32(b + 12), 3);
    assert_int_equal(le32(b + 16), 1);
    assert_int_equal(b[20], 'w');
    assert_int_equal(le32(b + 21), KILN_F32);
    assert_int_equal(le32(b + 25), 2);
    assert_int_equal(le64(b + 29), 2);
    assert_int_equal(le64(b + 37), 3);
    assert_int_equal(le64(b + 45), 24);
    float w0;
    memcpy(&w0, b + 53, 4);
    assert_true(w0 == 1.5f);
    assert_int_equal(le32(b + n - 4), crc32_ref(b, n - 4));
    assert_int_equal(crc32_ref((const unsigned char *)"123456789", 9), 0xCBF43926u);
    free(b);

    /* A fresh session starts at zeros; restoring brings the values back. */
    kiln_session_options so;
    kiln_session_options_init(&so);
    for (int be = 0; be < 2; be++) {
        so.backend = be ? KILN_BACKEND_DEFAULT : KILN_BACKEND_REFERENCE;
        kiln_session *s = kiln_session_new(m.g, &so, NULL);
        assert_var(s, m.w, ZERO, 6);
        kiln_status *st = kiln_status_new();
        assert_int_equal(kiln_session_restore_variables(s, path, st), KILN_OK);
        kiln_status_free(st);
        assert_var(s, m.w, W1, 6);
        assert_var(s, m.b, B1, 3);
        assert_var(s, m.n, N1, 1);
        /* Runs see the restored values. */
        kiln_tensor *out = NULL;
        kiln_session_run(s, NULL, NULL, 0, &m.w, &out, 1, NULL, 0, NULL);
        assert_non_null(out);
        tu_assert_close(out, W1, 6, 0, 0);
        kiln_tensor_free(out);
        kiln_session_free(s);
    }
    kiln_graph_free(m.g);
    remove_dir();
}

static void test_training_round_trip(void **state)
{
    (void)state;
    make_dir();
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *w0 = tu_f32(1, (int64_t[]){3}, (float[]){1, -2, 3});
    kiln_value w = kiln_variable(g, "w", w0);
    kiln_tensor_free(w0);
    kiln_value loss = kiln_reduce_sum(g, kiln_mul(g, w, w), NULL, 0, 0);
    kiln_optimizer o;
    kiln_optimizer_init(&o, KILN_OPTIMIZER_ADAM, 0.1);
    kiln_value train = kiln_minimize(g, loss, &o, NULL);
    assert_true(kiln_value_ok(train));
    kiln_session *a = kiln_session_new(g, NULL, NULL), *b = kiln_session_new(g, NULL, NULL);
    for (int i = 0; i < 3; i++) kiln_session_run(a, NULL, NULL, 0, NULL, NULL, 0, &train, 1, NULL);
    assert_int_equal(kiln_session_save_variables(a, path, NULL), KILN_OK);
    assert_int_equal(kiln_session_restore_variables(b, path, NULL), KILN_OK);
    /* Both continue identically: the slots and step came along. */
    for (int i = 0; i < 2; i++) {
        kiln_session_run(a, NULL, NULL, 0, NULL, NULL, 0, &train, 1, NULL);
        kiln_session_run(b, NULL, NULL, 0, NULL, NULL, 0, &train, 1, NULL);
    }
    const char *names[] = {"w", "w/adam_m", "w/adam_v", "Adam/step"};
    for (int k = 0; k < 4; k++) {
        kiln_value v = kiln_graph_find(g, names[k]);
        kiln_tensor *ta = kiln_session_variable(a, v, NULL), *tb = kiln_session_variable(b, v, NULL);
        assert_int_equal(kiln_tensor_nbytes(ta), kiln_tensor_nbytes(tb));
        assert_memory_equal(kiln_tensor_data(ta), kiln_tensor_data(tb), kiln_tensor_nbytes(ta));
        kiln_tensor_free(ta);
        kiln_tensor_free(tb);
    }
    kiln_tensor *step = kiln_session_variable(b, kiln_graph_find(g, "Adam/step"), NULL);
    tu_assert_ints(step, (int64_t[]){5}, 1);
    kiln_tensor_free(step);
    kiln_session_free(a);
    kiln_session_free(b);
    kiln_graph_free(g);
    remove_dir();
}

/* Restoring into s must fail with code and a message containing each of
 * the substrings, and leave every variable of s at its trained value. */
static void expect_restore_fails(kiln_session *s, const model *m, int code, const char *s1,
                                 const char *s2)
{
    kiln_status *st = kiln_status_new();
    int rc = kiln_session_restore_variables(s, path, st);
    if (rc != code || !strstr(kiln_status_message(st), s1) ||
        (s2 && !strstr(kiln_status_message(st), s2)))
        fail_msg("restore: got %s '%s', want %s with '%s' and '%s'", kiln_status_code_name(rc),
                 kiln_status_message(st), kiln_status_code_name(code), s1, s2 ? s2 : "");
    kiln_status_free(st);
    assert_var(s, m->w, W1, 6);
    assert_var(s, m->b, B1, 3);
}

/* A session on m with the trained values set. */
static kiln_session *trained_session(model *m)
{
    kiln_session *s = kiln_session_new(m->g, NULL, NULL);
    assert_non_null(s);
    kiln_session_run(s, NULL, NULL, 0, NULL, NULL, 0, &m->set, 1, NULL);
    return s;
}

static void test_mismatches(void **state)
{
    (void)state;
    make_dir();
    /* The checkpoint: w f32[3,2], b, n. */
    model other = make_model(3, 1);
    save_trained(&other);
    kiln_graph_free(other.g);

    model m = make_model(2, 1); /* w is f32[2,3] here */
    kiln_session *s = trained_session(&m);
    expect_restore_fails(s, &m, KILN_ERR_INVALID_ARGUMENT, "variable 'w' is f32[3,2] in the checkpoint",
                         "but f32[2,3] in the session");
    kiln_session_free(s);
    kiln_graph_free(m.g);

    /* The checkpoint has no "n" ... */
    other = make_model(2, 0);
    save_trained(&other);
    kiln_graph_free(other.g);
    m = make_model(2, 1);
    s = trained_session(&m);
    expect_restore_fails(s, &m, KILN_ERR_NOT_FOUND, "the session's variable 'n' (i64[])",
                         "is not in it");
    kiln_session_free(s);
    kiln_graph_free(m.g);

    /* ... or the session has none. */
    other = make_model(2, 1);
    save_trained(&other);
    kiln_graph_free(other.g);
    m = make_model(2, 0);
    s = trained_session(&m);
    expect_restore_fails(s, &m, KILN_ERR_NOT_FOUND, "it holds variable 'n' (i64[])",
                         "which the session does not have");
    kiln_session_free(s);
    kiln_graph_free(m.g);
    remove_dir();
}

static void test_truncated_and_corrupt(void **state)
{
    (void)state;
    make_dir();
    model m = make_model(2, 1);
    save_trained(&m);
    size_t n;
    unsigned char *good = slurp(path, &n);
    /* A session whose variables hold other values, to see they stay. */
    kiln_session *s = trained_session(&m);

    /* Every truncation. */
    for (size_t len = 0; len < n; len++) {
        spit(path, good, len);
        kiln_status *st = kiln_status_new();
        int rc = kiln_session_restore_variables(s, path, st);
        const char *msg = kiln_status_message(st);
        if (rc == KILN_OK || !strstr(msg, path) ||
            !(strstr(msg, "truncated") || strstr(msg, "not a kiln checkpoint") ||
              strstr(msg, "checksum")))
            fail_msg("length %zu: %s", len, msg);
        kiln_status_free(st);
    }
    spit(path, good, 100);
    expect_restore_fails(s, &m, KILN_ERR_INVALID_ARGUMENT, "the file is truncated", NULL);
    spit(path, good, 7);
    expect_restore_fails(s, &m, KILN_ERR_INVALID_ARGUMENT, "not a kiln checkpoint", NULL);

    /* Every single flipped byte is caught (by the checksum, or earlier). */
    unsigned char *bad = malloc(n > 64 ? n : 64);
    for (size_t i = 0; i < n; i++) {
        memcpy(bad, good, n);
        bad[i] ^= 0x20;
        spit(path, bad, n);
        kiln_status *st = kiln_status_new();
        if (kiln_session_restore_variables(s, path, st) == KILN_OK) fail_msg("byte %zu: restored", i);
        kiln_status_free(st);
    }
    memcpy(bad, good, n);
    bad[60] ^= 1; /* inside w's data */
    spit(path, bad, n);
    expect_restore_fails(s, &m, KILN_ERR_INVALID_ARGUMENT, "checksum mismatch", "corrupt");

    /* A later version, with a valid checksum. */
    memcpy(bad, good, n);
    bad[8] = 2;
    uint32_t c = crc32_ref(bad, n - 4);
    for (int k = 0; k < 4; k++) bad[n - 4 + k] = (unsigned char)(c >> (8 * k));
    spit(path, bad, n);
    expect_restore_fails(s, &m, KILN_ERR_UNIMPLEMENTED, "format version 2", "reads version 1");
    free(bad);
    free(good);

    snprintf(path, sizeof path, "%s/missing.ckpt", dir);
    expect_restore_fails(s, &m, KILN_ERR_NOT_FOUND, "missing.ckpt", NULL);
    snprintf(path, sizeof path, "%s/no/such/dir.ckpt", dir);
    assert_int_equal(kiln_session_save_variables(s, path, NULL), KILN_ERR_IO);
    kiln_session_free(s);
    kiln_graph_free(m.g);
    remove_dir();
}

static void test_crash_during_save(void **state)
{
    (void)state;
    make_dir();
    model m = make_model(2, 1);
    /* The old checkpoint: the initial (zero) values. */
    kiln_session *s = kiln_session_new(m.g, NULL, NULL);
    assert_int_equal(kiln_session_save_variables(s, path, NULL), KILN_OK);
    size_t n_old;
    unsigned char *old = slurp(path, &n_old);
    /* Train, then crash part-way through saving. */
    kiln_session_run(s, NULL, NULL, 0, NULL, NULL, 0, &m.set, 1, NULL);
    rt_checkpoint_crash_after(40);
    kiln_status *st = kiln_status_new();
    assert_int_equal(kiln_session_save_variables(s, path, st), KILN_ERR_IO);
    assert_non_null(strstr(kiln_status_message(st), "simulated crash after 40 of"));
    kiln_status_free(st);
    /* The checkpoint is untouched; the partial temporary file is beside it. */
    size_t n_now;
    unsigned char *now = slurp(path, &n_now);
    assert_int_equal(n_now, n_old);
    assert_memory_equal(now, old, n_old);
    free(now);
    free(old);
    DIR *d = opendir(dir);
    struct dirent *e;
    int temps = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "model.ckpt.tmp.", 15) != 0) continue;
        char p[512];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        assert_int_equal(stat(p, &sb), 0);
        assert_int_equal(sb.st_size, 40);
        temps++;
    }
    closedir(d);
    assert_int_equal(temps, 1);
    /* It still loads: the old (zero) values come back. */
    assert_int_equal(kiln_session_restore_variables(s, path, NULL), KILN_OK);
    assert_var(s, m.w, ZERO, 6);
    assert_var(s, m.n, ZERO, 1);
    /* The hook is one-shot: the next save works and replaces it. */
    kiln_session_run(s, NULL, NULL, 0, NULL, NULL, 0, &m.set, 1, NULL);
    assert_int_equal(kiln_session_save_variables(s, path, NULL), KILN_OK);
    kiln_session *s2 = kiln_session_new(m.g, NULL, NULL);
    assert_int_equal(kiln_session_restore_variables(s2, path, NULL), KILN_OK);
    assert_var(s2, m.w, W1, 6);
    assert_var(s2, m.n, N1, 1);
    kiln_session_free(s2);
    kiln_session_free(s);
    kiln_graph_free(m.g);
    remove_dir();
}

/* Saves taken while another thread trains are consistent snapshots: the
 * weights in each match the step counter saved with them, against the
 * trajectory of an undisturbed run. */
#define CSTEPS 40

typedef struct {
    kiln_session *s;
    kiln_value train;
    volatile int done;
} trainer;

static void *train_thread(void *arg)
{
    trainer *t = arg;
    for (int i = 0; i < CSTEPS; i++)
        kiln_session_run(t->s, NULL, NULL, 0, NULL, NULL, 0, &t->train, 1, NULL);
    __atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_save_while_training(void **state)
{
    (void)state;
    make_dir();
    kiln_graph *g = kiln_graph_new();
    kiln_tensor *w0 = tu_f64(1, (int64_t[]){2}, (double[]){1, -3});
    kiln_value w = kiln_variable(g, "w", w0);
    kiln_tensor_free(w0);
    kiln_value loss = kiln_reduce_sum(g, kiln_mul(g, w, w), NULL, 0, 0);
    kiln_optimizer o;
    kiln_optimizer_init(&o, KILN_OPTIMIZER_ADAM, 0.05);
    kiln_value train = kiln_minimize(g, loss, &o, NULL);
    kiln_value step = kiln_graph_find(g, "Adam/step");
    kiln_session_options so;
    kiln_session_options_init(&so);
    so.backend = KILN_BACKEND_REFERENCE;
    /* The undisturbed trajectory. */
    static double traj[CSTEPS + 1][2];
    kiln_session *ref = kiln_session_new(g, &so, NULL);
    for (int i = 0; i <= CSTEPS; i++) {
        kiln_tensor *t = kiln_session_variable(ref, w, NULL);
        memcpy(traj[i], kiln_tensor_data(t), sizeof traj[i]);
        kiln_tensor_free(t);
        kiln_session_run(ref, NULL, NULL, 0, NULL, NULL, 0, &train, 1, NULL);
    }
    kiln_session_free(ref);

    trainer tr = {kiln_session_new(g, &so, NULL), train, 0};
    kiln_session *check = kiln_session_new(g, &so, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, train_thread, &tr), 0);
    int saves = 0;
    do {
        assert_int_equal(kiln_session_save_variables(tr.s, path, NULL), KILN_OK);
        assert_int_equal(kiln_session_restore_variables(check, path, NULL), KILN_OK);
        kiln_tensor *ts = kiln_session_variable(check, step, NULL);
        kiln_tensor *tw = kiln_session_variable(check, w, NULL);
        int64_t k = ((int64_t *)kiln_tensor_data(ts))[0];
        assert_true(k >= 0 && k <= CSTEPS);
        assert_memory_equal(kiln_tensor_data(tw), traj[k], sizeof traj[k]);
        kiln_tensor_free(ts);
        kiln_tensor_free(tw);
        saves++;
    } while (!__atomic_load_n(&tr.done, __ATOMIC_SEQ_CST));
    pthread_join(th, NULL);
    assert_true(saves >= 1);
    kiln_session_free(check);
    kiln_session_free(tr.s);
    kiln_graph_free(g);
    remove_dir();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_TEST(test_format_and_round_trip),
        TU_TEST(test_training_round_trip),
        TU_TEST(test_mismatches),
        TU_TEST(test_truncated_and_corrupt),
        TU_TEST(test_crash_during_save),
        TU_TEST(test_save_while_training),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
