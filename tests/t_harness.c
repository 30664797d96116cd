/* SPDX-License-Identifier: MIT */
/*
 * t_harness.c — checks of the test harness itself (weft-test.c), so that a
 * broken t_count or bench line cannot make other cases pass vacuously.
 * Needs nothing from the runtime.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"

extern unsigned t_current_flags; /* weft-test.c */

/* Restores an environment variable to what it was. */
static void env_restore(const char *name, const char *saved)
{
    if (saved != NULL)
        setenv(name, saved, 1);
    else
        unsetenv(name);
}

void t_harness_pass(void)
{
    /* Copies: setenv may free what getenv returned. */
    char *scale = getenv("WEFT_TEST_SCALE") ? strdup(getenv("WEFT_TEST_SCALE")) : NULL;
    char *stress = getenv("WEFT_TEST_STRESS") ? strdup(getenv("WEFT_TEST_STRESS")) : NULL;
    unsigned flags = t_current_flags;

    /* No scaling environment: counts pass through. */
    unsetenv("WEFT_TEST_SCALE");
    unsetenv("WEFT_TEST_STRESS");
    t_current_flags = F_SCALED;
    CHECK_EQ(t_count(1000), 1000);
    CHECK_EQ(t_count(0), 0);

    /* Scaled: divided, never below 1, only for F_SCALED cases. */
    setenv("WEFT_TEST_SCALE", "10", 1);
    CHECK_EQ(t_count(1000), 100);
    CHECK_EQ(t_count(1005), 100);
    CHECK_EQ(t_count(5), 1);
    CHECK_EQ(t_count(1), 1);
    t_current_flags = F_NONE;
    CHECK_EQ(t_count(1000), 1000);

    /* Stress multiplies every case's counts, after scaling. */
    setenv("WEFT_TEST_STRESS", "3", 1);
    CHECK_EQ(t_count(1000), 3000);
    t_current_flags = F_SCALED;
    CHECK_EQ(t_count(1000), 300);
    t_current_flags = F_NONE;
    CHECK_EQ(t_count(INT64_MAX / 2), INT64_MAX); /* saturates */

    /* The procs list contention cases loop over. */
    CHECK_EQ(t_procs_list[0], 1);
    CHECK_EQ(t_procs_list[3], 8);

    /* Unset parameters take the default. */
    CHECK_EQ(t_param("no_such_parameter", 42), 42);

    /* The comparison macros compare as int64_t, so mixed types work. */
    CHECK_LT(-1, 1u);
    CHECK_GE((int64_t)1 << 40, 1);

    env_restore("WEFT_TEST_SCALE", scale);
    env_restore("WEFT_TEST_STRESS", stress);
    free(scale);
    free(stress);
    t_current_flags = flags;
}
