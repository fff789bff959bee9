/* A hand-written single-producer single-consumer ring with cached indices: the
 * floor shmprim's SPSC rings are measured against (`shmprim bench`, figures
 * spsc-*). It lives in a shared mapping; the producer and the consumer run in
 * two processes. Each side keeps a private copy of the other side's index and
 * reads the shared one only when the copy says the ring is full (producer) or
 * empty (consumer), so in steady state each message costs one shared store.
 *
 * Built by build.rs with the system C compiler when the `bench` feature is on.
 * Every loop gives up (returns -1) after `timeout_ns` without progress so that
 * a dead peer never hangs the benchmark. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Fields written by different sides are 128 bytes apart, not 64: the L2
 * prefetcher fetches lines in 128-byte pairs, so two sides writing the two
 * halves of a pair would still share it (measured: the ring is ~8% faster this
 * way; shmprim's rings are laid out the same). */
#define CACHE_LINE 128

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ volatile("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

struct cring {
    /* Consumer's line: the shared head and the consumer's cache of tail. */
    _Alignas(CACHE_LINE) _Atomic uint64_t head;
    uint64_t cached_tail;
    /* Producer's line: the shared tail and the producer's cache of head. */
    _Alignas(CACHE_LINE) _Atomic uint64_t tail;
    uint64_t cached_head;
    /* Read-only after init. */
    _Alignas(CACHE_LINE) uint64_t capacity; /* a power of two */
    uint64_t slot_size;
    _Alignas(CACHE_LINE) unsigned char slots[];
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t shmprim_bench_cring_size(uint64_t capacity, uint64_t slot_size) {
    return sizeof(struct cring) + capacity * slot_size;
}

void shmprim_bench_cring_init(void *mem, uint64_t capacity, uint64_t slot_size) {
    struct cring *r = mem;
    atomic_store_explicit(&r->head, 0, memory_order_relaxed);
    atomic_store_explicit(&r->tail, 0, memory_order_relaxed);
    r->cached_tail = 0;
    r->cached_head = 0;
    r->capacity = capacity;
    r->slot_size = slot_size;
}

/* Waits until the consumer has freed a slot; returns 0, or -1 on timeout. */
static inline int wait_not_full(struct cring *r, uint64_t tail, uint64_t timeout_ns) {
    if (tail - r->cached_head < r->capacity)
        return 0;
    uint64_t spins = 0, start = 0;
    for (;;) {
        r->cached_head = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail - r->cached_head < r->capacity)
            return 0;
        if ((++spins & 0xffff) == 0) {
            uint64_t t = now_ns();
            if (start == 0)
                start = t;
            else if (t - start > timeout_ns)
                return -1;
        }
        CPU_RELAX();
    }
}

/* Waits until the producer has published a message; returns 0, or -1. */
static inline int wait_not_empty(struct cring *r, uint64_t head, uint64_t timeout_ns) {
    if (r->cached_tail != head)
        return 0;
    uint64_t spins = 0, start = 0;
    for (;;) {
        r->cached_tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (r->cached_tail != head)
            return 0;
        if ((++spins & 0xffff) == 0) {
            uint64_t t = now_ns();
            if (start == 0)
                start = t;
            else if (t - start > timeout_ns)
                return -1;
        }
        CPU_RELAX();
    }
}

/* Sends 1..=count as u64 messages. */
int shmprim_bench_cring_produce_u64(void *mem, uint64_t count, uint64_t timeout_ns) {
    struct cring *r = mem;
    uint64_t *slots = (uint64_t *)r->slots;
    uint64_t mask = r->capacity - 1;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (uint64_t i = 1; i <= count; i++) {
        if (wait_not_full(r, tail, timeout_ns))
            return -1;
        slots[tail & mask] = i;
        tail++;
        atomic_store_explicit(&r->tail, tail, memory_order_release);
    }
    return 0;
}

/* Receives count u64 messages into *sum; returns 0, or -1 on timeout. */
int shmprim_bench_cring_consume_u64(void *mem, uint64_t count, uint64_t timeout_ns, uint64_t *sum) {
    struct cring *r = mem;
    const uint64_t *slots = (const uint64_t *)r->slots;
    uint64_t mask = r->capacity - 1;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t s = 0;
    for (uint64_t i = 0; i < count; i++) {
        if (wait_not_empty(r, head, timeout_ns))
            return -1;
        s += slots[head & mask];
        head++;
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
    *sum = s;
    return 0;
}

/* Sends count messages of msg_size bytes (<= slot_size), the first eight bytes
 * of message i holding i. */
int shmprim_bench_cring_produce_bytes(void *mem, uint64_t count, uint64_t msg_size, uint64_t timeout_ns) {
    struct cring *r = mem;
    uint64_t mask = r->capacity - 1, slot_size = r->slot_size;
    unsigned char msg[65536];
    if (msg_size > slot_size || msg_size > sizeof msg || msg_size < 8)
        return -2;
    memset(msg, 0xa5, msg_size);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (uint64_t i = 1; i <= count; i++) {
        if (wait_not_full(r, tail, timeout_ns))
            return -1;
        memcpy(msg, &i, 8);
        memcpy(r->slots + (tail & mask) * slot_size, msg, msg_size);
        tail++;
        atomic_store_explicit(&r->tail, tail, memory_order_release);
    }
    return 0;
}

/* Receives count messages of msg_size bytes, copying each out; *sum adds their
 * first eight bytes. */
int shmprim_bench_cring_consume_bytes(void *mem, uint64_t count, uint64_t msg_size, uint64_t timeout_ns, uint64_t *sum) {
    struct cring *r = mem;
    uint64_t mask = r->capacity - 1, slot_size = r->slot_size;
    unsigned char msg[65536];
    if (msg_size > slot_size || msg_size > sizeof msg || msg_size < 8)
        return -2;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t s = 0, first;
    for (uint64_t i = 0; i < count; i++) {
        if (wait_not_empty(r, head, timeout_ns))
            return -1;
        memcpy(msg, r->slots + (head & mask) * slot_size, msg_size);
        head++;
        atomic_store_explicit(&r->head, head, memory_order_release);
        memcpy(&first, msg, 8);
        s += first;
    }
    *sum = s;
    return 0;
}
