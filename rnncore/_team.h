/*
 * A team of helper threads that share a call's products with the calling
 * thread.  A call takes the team with rnc_team_claim(), which returns the
 * number of parts its work is split into (SciPy's BLAS thread count; 1 for
 * no split; negative when another call holds the team, see there), and
 * gives it back with rnc_team_release(parts).  In between,
 * rnc_team_split(parts, fn, arg) runs fn(arg, p, |parts|) for p = 0 ..
 * |parts|-1, each part on whichever of the caller and the helpers takes it
 * first, and returns when every part is done.
 *
 * Why not BLAS's threads: a multi-threaded BLAS repacks W_hh at every step,
 * and a per-step product is too small for BLAS to thread well; the packed
 * kernel packs W once per call and the team splits each step's rows
 * (_packed_gemm.h).  While a call holds the team, SciPy's BLAS is set to
 * one thread and the call splits its large products over the team too:
 * BLAS's idle threads spin for a while after each threaded product, and a
 * helper sharing a core with one of them ran at half speed.
 *
 * The helpers are created on first use and live as long as the process.
 * Between tasks each spins for up to RNC_TEAM_SPIN_NS (the next time step
 * follows within microseconds), then sleeps on a condition variable, so an
 * idle team costs no CPU; at rnc_team_release they sleep at once.  One call
 * holds the team at a time: a call that finds it taken (by another Python
 * thread) runs the same parts one by one on its own thread.  After fork()
 * the child has no helpers and makes new ones.
 *
 * POSIX threads only; elsewhere (MSVC) RNC_HAVE_TEAM is 0, rnc_team_claim
 * returns 1 and every product runs on the calling thread.
 *
 * This header is compiled into one module only (rnncore/_parallel.pyx), so
 * that the process has one team; the other modules call it through there.
 */
#ifndef RNNCORE_TEAM_H
#define RNNCORE_TEAM_H

#include "_simd.h"

#if (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
#define RNC_HAVE_TEAM 1
#else
#define RNC_HAVE_TEAM 0
#endif

/* SciPy's BLAS thread count, read and set through the addresses of its
   openblas_get_num_threads and openblas_set_num_threads, which the Python
   side passes once it has found them (rnncore/_threads.py); 1 while
   unknown.  While calls that split their work hold BLAS at one thread
   (rnc_blas_lower), rnc_blas_threads() reports the count found before
   (rnc_blas_lowered), so that the calls beside them split theirs the same
   way; while the Python side's limit for overlapping calls holds it, 1. */
static int (*rnc_blas_get)(void) = 0;
static void (*rnc_blas_set)(int) = 0;
static int rnc_blas_lowered = 0; /* atomic; set before BLAS is lowered */
RNC_UNUSED static void rnc_set_blas_thread_functions(size_t get, size_t set)
{
    rnc_blas_get = (int (*)(void))get;
    rnc_blas_set = (void (*)(int))set;
}
RNC_UNUSED static int rnc_blas_threads(void)
{
#if RNC_HAVE_TEAM
    int n, lowered = __atomic_load_n(&rnc_blas_lowered, __ATOMIC_SEQ_CST);
    if (lowered) return lowered;
    n = rnc_blas_get ? rnc_blas_get() : 1;
    /* a count of 1 read just after a claim lowered it */
    lowered = __atomic_load_n(&rnc_blas_lowered, __ATOMIC_SEQ_CST);
    return lowered ? lowered : n;
#else
    return rnc_blas_get ? rnc_blas_get() : 1;
#endif
}

/* BLAS stays at one thread from the first rnc_blas_lower of calls that
   overlap to the last rnc_blas_restore, with one count for the calls that
   split their work (rnc_team_claim, whether a call holds the team or runs
   its parts alone) and the Python side's limit (python = 1): OpenBLAS's
   results depend on its thread count (its edge kernels round differently
   from its full ones, so sharing a product between threads changes bits),
   and a call that started with BLAS lowered must finish that way to give
   the bits of a call on its own. */
#if RNC_HAVE_TEAM
#include <pthread.h>
static pthread_mutex_t rnc_blas_lock = PTHREAD_MUTEX_INITIALIZER;
#define RNC_BLAS_LOCK() pthread_mutex_lock(&rnc_blas_lock)
#define RNC_BLAS_UNLOCK() pthread_mutex_unlock(&rnc_blas_lock)
#define RNC_BLAS_LOWERED(n) __atomic_store_n(&rnc_blas_lowered, n, __ATOMIC_SEQ_CST)
#else /* no team: only the Python side lowers BLAS, under its own lock */
#define RNC_BLAS_LOCK() ((void)0)
#define RNC_BLAS_UNLOCK() ((void)0)
#define RNC_BLAS_LOWERED(n) (rnc_blas_lowered = (n))
#endif
static int rnc_blas_users = 0;  /* lowerings not yet restored */
static int rnc_blas_python = 0; /* the Python side's limit is one of them */
static int rnc_blas_saved = 0;  /* BLAS's thread count before the first */

/* Lower BLAS to one thread (rnc_blas_set known); returns the count before. */
RNC_UNUSED static int rnc_blas_lower(int python)
{
    int saved;
    RNC_BLAS_LOCK();
    if (python) rnc_blas_python = 1;
    if (rnc_blas_users++ == 0) rnc_blas_saved = rnc_blas_get();
    /* before BLAS reads 1: see rnc_blas_threads */
    RNC_BLAS_LOWERED(rnc_blas_python ? 1 : rnc_blas_saved);
    if (rnc_blas_users == 1) rnc_blas_set(1);
    saved = rnc_blas_saved;
    RNC_BLAS_UNLOCK();
    return saved;
}

/* Undo one rnc_blas_lower(python). */
RNC_UNUSED static void rnc_blas_restore(int python)
{
    RNC_BLAS_LOCK();
    if (python) rnc_blas_python = 0;
    if (--rnc_blas_users == 0) rnc_blas_set(rnc_blas_saved);
    RNC_BLAS_LOWERED(rnc_blas_users == 0 ? 0
                     : rnc_blas_python ? 1 : rnc_blas_saved);
    RNC_BLAS_UNLOCK();
}

#if RNC_HAVE_TEAM

#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

/* The caller and up to RNC_TEAM_MAX - 1 helpers. */
#define RNC_TEAM_MAX 16
#define RNC_TEAM_SPIN_NS 200000

typedef void (*rnc_team_fn)(void *arg, int part, int parts);

static struct {
    pthread_mutex_t busy;       /* held by the caller that uses the team */
    pthread_mutex_t sleep_lock; /* with `wake`: where idle helpers sleep */
    pthread_cond_t wake;
    int helpers;                /* helpers created */
    int atfork;                 /* pthread_atfork registered */
    rnc_team_fn fn;             /* the task, valid while a part runs */
    void *arg;
    /* the task's number times RNC_TEAM_TASK plus its parts, in one word so
       that a helper outside a task never reads the next task's fields */
    unsigned task;              /* atomic */
    unsigned born;              /* task when the newest helpers were made */
    /* the task's number times 2^16 plus a bit for each part taken (by a
       helper, or by the caller when the helper had not started it) */
    unsigned long long taken;   /* atomic */
    int done;                   /* parts helpers have finished (atomic) */
    int sleepers;               /* helpers on `wake` or about to be (atomic) */
    int resting;                /* released: sleep now (atomic) */
    /* this claim so far: tasks split, and the caller's time on its own
       parts and waiting for the helpers after them (see rnc_team_split) */
    int tasks, alone, missed;   /* missed: tasks in a row no helper joined */
    long long own_ns, wait_ns, missed_ns;
} rnc_team = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
              PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
              0, 0, 0, 0};
#define RNC_TEAM_TASK 32u /* > RNC_TEAM_MAX */
/* RNC_TEAM_MISSES short tasks in a row (under RNC_TEAM_SHORT_NS each) that
   no helper joined end the team for the call (see rnc_team_split). */
#define RNC_TEAM_MISSES 8
#define RNC_TEAM_SHORT_NS 200000

RNC_INLINE void rnc_team_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

RNC_INLINE long long rnc_team_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wait until the task counter leaves `seen`; returns its new value. */
static unsigned rnc_team_wait_task(unsigned seen)
{
    unsigned task;
    long long deadline = rnc_team_now_ns() + RNC_TEAM_SPIN_NS;
    for (int i = 1;; i++) {
        task = __atomic_load_n(&rnc_team.task, __ATOMIC_ACQUIRE);
        if (task != seen) return task;
        if (__atomic_load_n(&rnc_team.resting, __ATOMIC_RELAXED)) break;
        if (i % 256 == 0) {
            if (rnc_team_now_ns() > deadline) break;
            sched_yield(); /* to a thread that needs this core, if any */
        }
        rnc_team_relax();
    }
    pthread_mutex_lock(&rnc_team.sleep_lock);
    /* sleepers before the re-check, as the caller bumps task before reading
       sleepers: one of the two sees the other (sequentially consistent) */
    __atomic_add_fetch(&rnc_team.sleepers, 1, __ATOMIC_SEQ_CST);
    while ((task = __atomic_load_n(&rnc_team.task, __ATOMIC_SEQ_CST)) == seen)
        pthread_cond_wait(&rnc_team.wake, &rnc_team.sleep_lock);
    __atomic_sub_fetch(&rnc_team.sleepers, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&rnc_team.sleep_lock);
    return task;
}

/* Take part `part` of task `task` (the task word): 0 if it is taken, or
   the task is over. */
static int rnc_team_take(unsigned task, int part)
{
    const unsigned long long bit = 1ull << part;
    unsigned long long w = __atomic_load_n(&rnc_team.taken, __ATOMIC_ACQUIRE);
    for (;;) {
        if (w >> 16 != task || (w & bit)) return 0;
        if (__atomic_compare_exchange_n(&rnc_team.taken, &w, w | bit, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 1;
    }
}

static void *rnc_team_helper(void *id)
{
    const int part = (int)(size_t)id;
    /* the task word from before this thread was made, not the current one:
       the first task may have been posted before this thread ran */
    unsigned seen = rnc_team.born;
    for (;;) {
        int parts;
        seen = rnc_team_wait_task(seen);
        parts = (int)(seen % RNC_TEAM_TASK);
        if (part < parts && rnc_team_take(seen, part)) {
            rnc_team.fn(rnc_team.arg, part, parts);
            __atomic_add_fetch(&rnc_team.done, 1, __ATOMIC_RELEASE);
        }
    }
    return NULL;
}

/* The child of a fork has only the thread that forked. */
static void rnc_team_after_fork(void)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    rnc_team.busy = m;
    rnc_team.sleep_lock = m;
    rnc_team.wake = c;
    rnc_team.helpers = 0;
    rnc_team.done = 0;
    rnc_blas_lowered = 0;
    rnc_blas_lock = m;
    rnc_blas_users = rnc_blas_python = 0;
    rnc_team.sleepers = 0;
}

/* Make helpers up to `want` (caller holds `busy`); returns how many exist. */
static int rnc_team_grow(int want)
{
    pthread_attr_t attr;
    sigset_t all, old;
    if (!rnc_team.atfork) {
        if (pthread_atfork(NULL, NULL, rnc_team_after_fork) != 0) return 0;
        rnc_team.atfork = 1;
    }
    if (pthread_attr_init(&attr) != 0) return rnc_team.helpers;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 1 << 20);
    /* signals go to the process's other threads, never to a helper */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rnc_team.born = rnc_team.task;
    while (rnc_team.helpers < want) {
        pthread_t thread;
        if (pthread_create(&thread, &attr, rnc_team_helper,
                           (void *)(size_t)(rnc_team.helpers + 1)) != 0)
            break;
        rnc_team.helpers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rnc_team.helpers;
}

/* The team for one call: the number of parts its work is split into,
   SciPy's BLAS thread count (at most the online CPUs and RNC_TEAM_MAX),
   with BLAS set to one thread until rnc_team_release (rnc_blas_lower); 1
   when BLAS runs one thread.  Minus that number when another call holds
   the team or no helper thread can be made: the call splits its work the
   same way, with BLAS lowered too, but runs every part itself, so that its
   results do not depend on which call got the team. */
RNC_UNUSED static int rnc_team_claim(void)
{
    static long online = 0; /* looked up once: glibc reads a file for it */
    long cpus = __atomic_load_n(&online, __ATOMIC_RELAXED);
    int parts = rnc_blas_threads();
    if (cpus == 0) {
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
        __atomic_store_n(&online, cpus, __ATOMIC_RELAXED);
    }
    if (cpus > 0 && parts > cpus) parts = (int)cpus;
    if (parts > RNC_TEAM_MAX) parts = RNC_TEAM_MAX;
    if (parts < 2 || !rnc_blas_set) return 1;
    rnc_blas_lower(0);
    if (pthread_mutex_trylock(&rnc_team.busy) != 0) return -parts;
    if (rnc_team.helpers < parts - 1 && rnc_team_grow(parts - 1) < parts - 1) {
        pthread_mutex_unlock(&rnc_team.busy);
        return -parts;
    }
    rnc_team.tasks = rnc_team.alone = rnc_team.missed = 0;
    rnc_team.own_ns = rnc_team.wait_ns = rnc_team.missed_ns = 0;
    return parts;
}

/* Helper threads made so far (for the tests). */
RNC_UNUSED static int rnc_team_helpers(void)
{
    return rnc_team.helpers;
}

/* The call that claimed `parts` is done with the team. */
RNC_UNUSED static void rnc_team_release(int parts)
{
    if (parts > -2 && parts < 2) return;
    if (parts >= 2) {
        __atomic_store_n(&rnc_team.resting, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&rnc_team.busy);
    }
    rnc_blas_restore(0);
}

/* fn(arg, p, |parts|) for every part p < |parts|, over the caller and the
   helpers; parts is what rnc_team_claim returned to this call (negative:
   the caller runs every part).

   A helper that shares its core with another busy thread (typically a BLAS
   thread of another library, or of SciPy's BLAS before this call, spinning
   while it waits for work) runs only now and then.  So a part is run by
   whoever takes it first: the caller, after its own, takes the parts no
   helper has started and waits only for those that have; the helper
   rejoins once the core is free (an idle BLAS thread stops spinning about
   0.1 s after its last product, and BLAS stays at one thread while the
   call holds the team).  A call goes on alone when its helpers keep it
   waiting longer than its own parts took (a helper interrupted in the
   middle of a part), or miss RNC_TEAM_MISSES short tasks in a row: there
   the posting and the helpers' spinning cost more than waiting for them
   gains.  The first task of a claim, which may wake the helpers, is not
   counted. */
RNC_UNUSED static void rnc_team_split(int parts, rnc_team_fn fn, void *arg)
{
    long long t0, t1;
    unsigned task;
    int mine = 1;
    if (parts < 0 || rnc_team.alone) { /* the same parts, one by one */
        if (parts < 0) parts = -parts;
        for (int p = 0; p < parts; p++) fn(arg, p, parts);
        return;
    }
    if (parts < 2) {
        fn(arg, 0, 1);
        return;
    }
    task = (rnc_team.task / RNC_TEAM_TASK + 1) * RNC_TEAM_TASK + (unsigned)parts;
    rnc_team.fn = fn;
    rnc_team.arg = arg;
    __atomic_store_n(&rnc_team.done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&rnc_team.taken, ((unsigned long long)task << 16) | 1u,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&rnc_team.resting, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&rnc_team.task, task, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&rnc_team.sleepers, __ATOMIC_SEQ_CST) > 0) {
        pthread_mutex_lock(&rnc_team.sleep_lock);
        pthread_cond_broadcast(&rnc_team.wake);
        pthread_mutex_unlock(&rnc_team.sleep_lock);
    }
    t0 = rnc_team_now_ns();
    fn(arg, 0, parts);
    for (int p = 1; p < parts; p++)
        if (rnc_team_take(task, p)) {
            fn(arg, p, parts);
            mine++;
        }
    t1 = rnc_team_now_ns();
    /* yield now and then: a helper may share this core */
    for (int i = 1; __atomic_load_n(&rnc_team.done, __ATOMIC_ACQUIRE) < parts - mine;
         i++) {
        if (i % 1024 == 0) sched_yield();
        else rnc_team_relax();
    }
    if (rnc_team.tasks++ == 0) return;
    rnc_team.own_ns += t1 - t0;
    rnc_team.wait_ns += rnc_team_now_ns() - t1;
    if (mine == parts) {
        rnc_team.missed++;
        rnc_team.missed_ns += t1 - t0;
    } else {
        rnc_team.missed = 0;
        rnc_team.missed_ns = 0;
    }
    if (rnc_team.wait_ns > rnc_team.own_ns
        || (rnc_team.missed >= RNC_TEAM_MISSES
            && rnc_team.missed_ns < rnc_team.missed * RNC_TEAM_SHORT_NS)) {
        rnc_team.alone = 1;
        __atomic_store_n(&rnc_team.resting, 1, __ATOMIC_RELAXED);
    }
}

#else

typedef void (*rnc_team_fn)(void *arg, int part, int parts);

RNC_UNUSED static int rnc_team_claim(void) { return 1; }
RNC_UNUSED static int rnc_team_helpers(void) { return 0; }
RNC_UNUSED static void rnc_team_release(int parts) { (void)parts; }
RNC_UNUSED static void rnc_team_split(int parts, rnc_team_fn fn, void *arg)
{
    if (parts < 0) parts = -parts;
    if (parts < 1) parts = 1;
    for (int p = 0; p < parts; p++) fn(arg, p, parts);
}
#endif

#endif /* RNNCORE_TEAM_H */
