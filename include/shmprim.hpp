/*
 * shmprim.hpp: a header-only C++17 wrapper over the C API in shmprim.h.
 *
 * - Move-only RAII handles (closed in the destructor): shmprim::segment,
 *   mutex, rmutex, semaphore, event, condvar, barrier, queue<T>, byte_queue,
 *   value<T>, array<T>, pipe and pipe_end, and pool (forked workers).
 * - Timeouts as std::chrono durations; shmprim::forever waits without limit.
 * - Failures throw shmprim::error (a std::system_error whose code() is in
 *   shmprim::category(), so `e.code() == SHMPRIM_TIMEOUT` works), with the
 *   library's message for the failing call.
 * - mutex and rmutex are TimedLockable (std::lock_guard, std::unique_lock,
 *   std::scoped_lock work); semaphore is BasicLockable (a `with sem:` guard).
 *
 * Owner death: when lock() finds that the previous owner died holding the
 * lock, it returns normally *with the lock held* and owner_died() is true
 * until unlock: check or repair the data, then call consistent(); unlocking
 * without it leaves the decision to the next locker, whose owner_died() is
 * true in turn.
 */
#ifndef SHMPRIM_HPP
#define SHMPRIM_HPP

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "shmprim.h"

namespace std {
/* Lets a shmprim_status compare equal to a std::error_code. */
template <>
struct is_error_code_enum<shmprim_status> : true_type {};
}  // namespace std

namespace shmprim {

/** The error category of shmprim status codes. */
class status_category : public std::error_category {
public:
    const char *name() const noexcept override { return "shmprim"; }
    std::string message(int code) const override { return shmprim_status_str(code); }
};

/** The one instance of the category. */
inline const std::error_category &category() noexcept {
    static const status_category c;
    return c;
}

/** A failed call: code() is the status in category(), what() the message. */
class error : public std::system_error {
public:
    error(shmprim_status status, const std::string &what)
        : std::system_error(static_cast<int>(status), category(), what), status_(status) {}
    /** The status the C function returned. */
    shmprim_status status() const noexcept { return status_; }

private:
    shmprim_status status_;
};

/** Wait without limit. */
inline constexpr std::chrono::nanoseconds forever{-1};

namespace detail {

[[noreturn]] inline void raise(shmprim_status st) {
    throw error(st, shmprim_last_error_message());
}

/* A failure the wrapper itself detects, with its own message. */
[[noreturn]] inline void raise(shmprim_status st, const char *what) {
    throw error(st, what);
}

inline void check(shmprim_status st) {
    if (st != SHMPRIM_OK) raise(st);
}

/* A C timeout: negative durations wait forever, zero tries once. */
template <class Rep, class Period>
int64_t to_ns(std::chrono::duration<Rep, Period> d) {
    using namespace std::chrono;
    if (d < duration<Rep, Period>::zero()) return -1;
    auto ns = duration_cast<nanoseconds>(d).count();
    return ns < 0 ? INT64_MAX : static_cast<int64_t>(ns);
}

template <class Clock, class Duration>
int64_t until_ns(const std::chrono::time_point<Clock, Duration> &t) {
    auto left = t - Clock::now();
    return left <= decltype(left)::zero() ? 0 : to_ns(left);
}

/* Owns a C handle, closing it with Close. Move-only. */
template <class T, void (*Close)(T *)>
class handle {
public:
    handle() noexcept = default;
    explicit handle(T *p) noexcept : p_(p) {}
    handle(handle &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    handle &operator=(handle &&o) noexcept {
        if (this != &o) {
            reset();
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    handle(const handle &) = delete;
    handle &operator=(const handle &) = delete;
    ~handle() { reset(); }
    T *get() const noexcept { return p_; }
    explicit operator bool() const noexcept { return p_ != nullptr; }
    void reset() noexcept {
        if (p_) Close(std::exchange(p_, nullptr));
    }

private:
    T *p_ = nullptr;
};

/* Calls a C constructor filling an out-pointer; throws on failure. */
template <class T, class F>
T *make(F &&f) {
    T *out = nullptr;
    check(f(&out));
    return out;
}

}  // namespace detail

/** Options for create(): permission bits and flags (see shmprim_options). */
struct options {
    /** Options that unlink the name when the handle is closed. */
    static options unlink_when_closed() {
        options o;
        o.unlink_on_close = true;
        return o;
    }
    uint32_t mode = 0;
    bool unlink_on_close = false;
    bool priority_inheritance = false;  // mutexes only
    shmprim_options c() const noexcept {
        shmprim_options o{};
        o.mode = mode;
        o.flags = (unlink_on_close ? SHMPRIM_UNLINK_ON_CLOSE : 0u) |
                  (priority_inheritance ? SHMPRIM_PRIORITY_INHERITANCE : 0u);
        return o;
    }
};

/** A raw segment of bytes (Python's SharedMemory). */
class segment {
public:
    static segment create(const std::string &name, std::size_t size, uint32_t mode = 0) {
        return segment(detail::make<shmprim_segment>(
            [&](shmprim_segment **o) { return shmprim_segment_create(name.c_str(), size, mode, o); }));
    }
    static segment open(const std::string &name) {
        return segment(detail::make<shmprim_segment>(
            [&](shmprim_segment **o) { return shmprim_segment_open(name.c_str(), o); }));
    }
    static segment anonymous(std::size_t size) {
        return segment(detail::make<shmprim_segment>(
            [&](shmprim_segment **o) { return shmprim_segment_anonymous(size, o); }));
    }
    static void unlink(const std::string &name) { detail::check(shmprim_segment_unlink(name.c_str())); }
    void *data() const noexcept { return shmprim_segment_data(h_.get()); }
    template <class T>
    T *data_as() const noexcept { return static_cast<T *>(data()); }
    std::size_t size() const noexcept { return shmprim_segment_size(h_.get()); }
    shmprim_segment *native_handle() const noexcept { return h_.get(); }

private:
    explicit segment(shmprim_segment *p) : h_(p) {}
    detail::handle<shmprim_segment, shmprim_segment_close> h_;
};

class condvar;

namespace detail {

/* The lock operations mutex and rmutex share (TimedLockable). */
template <class Derived>
class lockable {
public:
    /** Locks, waiting as long as it takes; see owner_died(). */
    void lock() { (void)lock_for(forever); }
    /** Locks if free now. */
    bool try_lock() { return lock_for(std::chrono::nanoseconds(0)); }
    /** Locks, waiting at most `d`; false on timeout. */
    template <class Rep, class Period>
    bool try_lock_for(std::chrono::duration<Rep, Period> d) { return lock_for(d); }
    /** Locks, waiting until `t`; false on timeout. */
    template <class Clock, class Duration>
    bool try_lock_until(const std::chrono::time_point<Clock, Duration> &t) {
        return lock_ns(until_ns(t));
    }
    /** Unlocks (errors are ignored, as std::mutex does; see unlock_checked). */
    void unlock() noexcept {
        owner_died_ = false;
        (void)self().unlock_status();
    }
    /** Unlocks, throwing SHMPRIM_NOT_OWNER if this thread does not hold it. */
    void unlock_checked() {
        owner_died_ = false;
        check(self().unlock_status());
    }
    /** Whether the lock this thread holds was taken from an owner that died
     * holding it (valid while holding it). */
    bool owner_died() const noexcept { return owner_died_; }
    /** Declares the data consistent after owner death; the mutex stays usable. */
    void consistent() {
        check(self().consistent_status());
        owner_died_ = false;
    }

protected:
    template <class Rep, class Period>
    bool lock_for(std::chrono::duration<Rep, Period> d) { return lock_ns(to_ns(d)); }
    bool lock_ns(int64_t ns) {
        shmprim_status st = self().lock_status(ns);
        if (st == SHMPRIM_TIMEOUT) return false;
        if (st != SHMPRIM_OK && st != SHMPRIM_OWNER_DIED) raise(st);
        owner_died_ = st == SHMPRIM_OWNER_DIED;
        return true;
    }
    /* Written only by the thread holding the lock, so the lock protects it. */
    bool owner_died_ = false;
    friend class shmprim::condvar;

private:
    Derived &self() { return static_cast<Derived &>(*this); }
};

}  // namespace detail

/** A robust mutex guarding a byte payload (Python's Lock; Rust's Mutex<T>). */
class mutex : public detail::lockable<mutex> {
public:
    /** Creates it with a zeroed payload of `size` bytes aligned to `align`. */
    static mutex create(const std::string &name, std::size_t size, std::size_t align,
                        const options &o = {}) {
        shmprim_options c = o.c();
        return mutex(detail::make<shmprim_mutex>([&](shmprim_mutex **out) {
            return shmprim_mutex_create(name.c_str(), size, align, &c, out);
        }));
    }
    /** Creates it with a payload sized and aligned for T (as Rust's Mutex<T>). */
    template <class T>
    static mutex create_for(const std::string &name, const options &o = {}) {
        static_assert(std::is_trivially_copyable_v<T>, "the payload is plain bytes");
        return create(name, sizeof(T), alignof(T), o);
    }
    static mutex open(const std::string &name) {
        return mutex(detail::make<shmprim_mutex>(
            [&](shmprim_mutex **out) { return shmprim_mutex_open(name.c_str(), out); }));
    }
    static mutex open_or_create(const std::string &name, std::size_t size, std::size_t align) {
        return mutex(detail::make<shmprim_mutex>([&](shmprim_mutex **out) {
            return shmprim_mutex_open_or_create(name.c_str(), size, align, out, nullptr);
        }));
    }
    static mutex anonymous(std::size_t size, std::size_t align, const options &o = {}) {
        shmprim_options c = o.c();
        return mutex(detail::make<shmprim_mutex>(
            [&](shmprim_mutex **out) { return shmprim_mutex_anonymous(size, align, &c, out); }));
    }
    static void unlink(const std::string &name) { detail::check(shmprim_mutex_unlink(name.c_str())); }

    /** The guarded bytes; use them only while holding the lock. */
    void *data() const noexcept { return shmprim_mutex_data(h_.get()); }
    template <class T>
    T &data_as() const {
        if (sizeof(T) > data_size()) detail::raise(SHMPRIM_INVALID_ARGUMENT, "data_as: T is larger than the payload");
        return *static_cast<T *>(data());
    }
    std::size_t data_size() const noexcept { return shmprim_mutex_data_size(h_.get()); }
    shmprim_mutex *native_handle() const noexcept { return h_.get(); }

private:
    explicit mutex(shmprim_mutex *p) : h_(p) {}
    friend class detail::lockable<mutex>;
    shmprim_status lock_status(int64_t ns) { return shmprim_mutex_lock(h_.get(), ns); }
    shmprim_status unlock_status() { return shmprim_mutex_unlock(h_.get()); }
    shmprim_status consistent_status() { return shmprim_mutex_consistent(h_.get()); }
    detail::handle<shmprim_mutex, shmprim_mutex_close> h_;
};

/** A robust reentrant mutex (Python's RLock; Rust's ReentrantMutex<T>). */
class rmutex : public detail::lockable<rmutex> {
public:
    static rmutex create(const std::string &name, std::size_t size, std::size_t align,
                         const options &o = {}) {
        shmprim_options c = o.c();
        return rmutex(detail::make<shmprim_rmutex>([&](shmprim_rmutex **out) {
            return shmprim_rmutex_create(name.c_str(), size, align, &c, out);
        }));
    }
    static rmutex open(const std::string &name) {
        return rmutex(detail::make<shmprim_rmutex>(
            [&](shmprim_rmutex **out) { return shmprim_rmutex_open(name.c_str(), out); }));
    }
    static rmutex anonymous(std::size_t size, std::size_t align, const options &o = {}) {
        shmprim_options c = o.c();
        return rmutex(detail::make<shmprim_rmutex>(
            [&](shmprim_rmutex **out) { return shmprim_rmutex_anonymous(size, align, &c, out); }));
    }
    static void unlink(const std::string &name) { detail::check(shmprim_rmutex_unlink(name.c_str())); }
    void *data() const noexcept { return shmprim_rmutex_data(h_.get()); }
    std::size_t data_size() const noexcept { return shmprim_rmutex_data_size(h_.get()); }
    shmprim_rmutex *native_handle() const noexcept { return h_.get(); }

private:
    explicit rmutex(shmprim_rmutex *p) : h_(p) {}
    friend class detail::lockable<rmutex>;
    shmprim_status lock_status(int64_t ns) { return shmprim_rmutex_lock(h_.get(), ns); }
    shmprim_status unlock_status() { return shmprim_rmutex_unlock(h_.get()); }
    shmprim_status consistent_status() { return shmprim_rmutex_consistent(h_.get()); }
    detail::handle<shmprim_rmutex, shmprim_rmutex_close> h_;
};

/** A condition variable paired with a shmprim::mutex (Python's Condition). */
class condvar {
public:
    static condvar create(const std::string &name, const options &o = {}) {
        shmprim_options c = o.c();
        return condvar(detail::make<shmprim_condvar>(
            [&](shmprim_condvar **out) { return shmprim_condvar_create(name.c_str(), &c, out); }));
    }
    static condvar open(const std::string &name) {
        return condvar(detail::make<shmprim_condvar>(
            [&](shmprim_condvar **out) { return shmprim_condvar_open(name.c_str(), out); }));
    }
    static condvar anonymous() {
        return condvar(detail::make<shmprim_condvar>(
            [&](shmprim_condvar **out) { return shmprim_condvar_anonymous(out); }));
    }
    static void unlink(const std::string &name) { detail::check(shmprim_condvar_unlink(name.c_str())); }

    /** Releases the lock, waits for a notification, locks again (wake-ups may
     * be spurious). */
    void wait(std::unique_lock<mutex> &lk) { (void)wait_ns(lk, -1); }
    /** Waits until `pred()` holds. */
    template <class Pred>
    void wait(std::unique_lock<mutex> &lk, Pred pred) {
        while (!pred()) wait(lk);
    }
    /** Waits at most `d`; the lock is held again either way. */
    template <class Rep, class Period>
    std::cv_status wait_for(std::unique_lock<mutex> &lk, std::chrono::duration<Rep, Period> d) {
        return wait_ns(lk, detail::to_ns(d));
    }
    /** Waits at most `d` for `pred()`; returns `pred()`. */
    template <class Rep, class Period, class Pred>
    bool wait_for(std::unique_lock<mutex> &lk, std::chrono::duration<Rep, Period> d, Pred pred) {
        auto until = std::chrono::steady_clock::now() + d;
        while (!pred()) {
            if (wait_ns(lk, detail::until_ns(until)) == std::cv_status::timeout) return pred();
        }
        return true;
    }
    void notify_one() { detail::check(shmprim_condvar_notify_one(h_.get())); }
    void notify_all() { detail::check(shmprim_condvar_notify_all(h_.get())); }

private:
    explicit condvar(shmprim_condvar *p) : h_(p) {}
    std::cv_status wait_ns(std::unique_lock<mutex> &lk, int64_t ns) {
        if (!lk.owns_lock()) detail::raise(SHMPRIM_NOT_OWNER, "condvar wait: the unique_lock does not own the mutex");
        mutex &m = *lk.mutex();
        shmprim_status st = shmprim_condvar_wait(h_.get(), m.native_handle(), ns);
        if (st == SHMPRIM_TIMEOUT) return std::cv_status::timeout;
        if (st == SHMPRIM_OWNER_DIED) {
            m.owner_died_ = true;
            return std::cv_status::no_timeout;
        }
        if (st == SHMPRIM_UNRECOVERABLE) lk.release(); /* not held any more */
        detail::check(st);
        return std::cv_status::no_timeout;
    }
    detail::handle<shmprim_condvar, shmprim_condvar_close> h_;
};

/** A counting semaphore, optionally bounded (Python's Semaphore and
 * BoundedSemaphore). lock()/unlock() acquire and release one permit, so
 * std::lock_guard<semaphore> is Python's `with sem:`. */
class semaphore {
public:
    static constexpr uint32_t unbounded = SHMPRIM_SEMAPHORE_UNBOUNDED;
    static semaphore create(const std::string &name, uint32_t value, uint32_t bound = unbounded,
                            const options &o = {}) {
        shmprim_options c = o.c();
        return semaphore(detail::make<shmprim_semaphore>([&](shmprim_semaphore **out) {
            return shmprim_semaphore_create(name.c_str(), value, bound, &c, out);
        }));
    }
    static semaphore open(const std::string &name) {
        return semaphore(detail::make<shmprim_semaphore>(
            [&](shmprim_semaphore **out) { return shmprim_semaphore_open(name.c_str(), out); }));
    }
    static semaphore anonymous(uint32_t value, uint32_t bound = unbounded) {
        return semaphore(detail::make<shmprim_semaphore>(
            [&](shmprim_semaphore **out) { return shmprim_semaphore_anonymous(value, bound, out); }));
    }
    static void unlink(const std::string &name) {
        detail::check(shmprim_semaphore_unlink(name.c_str()));
    }
    void acquire() { detail::check(shmprim_semaphore_acquire(h_.get(), -1)); }
    bool try_acquire() { return try_acquire_for(std::chrono::nanoseconds(0)); }
    template <class Rep, class Period>
    bool try_acquire_for(std::chrono::duration<Rep, Period> d) {
        shmprim_status st = shmprim_semaphore_acquire(h_.get(), detail::to_ns(d));
        if (st == SHMPRIM_TIMEOUT) return false;
        detail::check(st);
        return true;
    }
    /** Gives back `n` permits; throws SHMPRIM_OVERFLOW beyond the bound. */
    void release(uint32_t n = 1) { detail::check(shmprim_semaphore_release(h_.get(), n)); }
    uint32_t value() const {
        uint32_t v = 0;
        detail::check(shmprim_semaphore_value(h_.get(), &v));
        return v;
    }
    void lock() { acquire(); }
    void unlock() noexcept { (void)shmprim_semaphore_release(h_.get(), 1); }

private:
    explicit semaphore(shmprim_semaphore *p) : h_(p) {}
    detail::handle<shmprim_semaphore, shmprim_semaphore_close> h_;
};

/** A flag processes wait on (Python's Event). */
class event {
public:
    static event create(const std::string &name, const options &o = {}) {
        shmprim_options c = o.c();
        return event(detail::make<shmprim_event>(
            [&](shmprim_event **out) { return shmprim_event_create(name.c_str(), &c, out); }));
    }
    static event open(const std::string &name) {
        return event(detail::make<shmprim_event>(
            [&](shmprim_event **out) { return shmprim_event_open(name.c_str(), out); }));
    }
    static event anonymous() {
        return event(detail::make<shmprim_event>([&](shmprim_event **out) { return shmprim_event_anonymous(out); }));
    }
    static void unlink(const std::string &name) { detail::check(shmprim_event_unlink(name.c_str())); }
    void set() { detail::check(shmprim_event_set(h_.get())); }
    void clear() { detail::check(shmprim_event_clear(h_.get())); }
    bool is_set() const {
        bool s = false;
        detail::check(shmprim_event_is_set(h_.get(), &s));
        return s;
    }
    void wait() { detail::check(shmprim_event_wait(h_.get(), -1)); }
    /** Waits at most `d`; whether the event was set. */
    template <class Rep, class Period>
    bool wait_for(std::chrono::duration<Rep, Period> d) {
        shmprim_status st = shmprim_event_wait(h_.get(), detail::to_ns(d));
        if (st == SHMPRIM_TIMEOUT) return false;
        detail::check(st);
        return true;
    }

private:
    explicit event(shmprim_event *p) : h_(p) {}
    detail::handle<shmprim_event, shmprim_event_close> h_;
};

/** A pool of forked worker processes (Python's Pool): map() runs a task
 * function over fixed-size tasks; a worker that dies costs only the task it
 * was running, reported as SHMPRIM_WORKER_DIED in that task's status. Build
 * it while the process has one thread. */
class pool {
public:
    explicit pool(std::uint32_t workers)
        : h_(detail::make<shmprim_pool>([&](shmprim_pool **out) { return shmprim_pool_create(workers, out); })) {}
    /** Runs `fn` over `tasks` into `results` (resized to match); one status
     * per task. `ctx` is passed to every call, in the forked worker. */
    template <class Task, class Result>
    std::vector<shmprim_status> map(shmprim_task_fn fn, void *ctx, const std::vector<Task> &tasks,
                                    std::vector<Result> &results) {
        static_assert(std::is_trivially_copyable_v<Task> && std::is_trivially_copyable_v<Result>,
                      "tasks and results cross processes as bytes");
        results.assign(tasks.size(), Result{});
        std::vector<std::int32_t> st(tasks.size());
        detail::check(shmprim_pool_map(h_.get(), fn, ctx, tasks.data(), tasks.size(), sizeof(Task),
                                       results.data(), sizeof(Result), st.data()));
        std::vector<shmprim_status> out;
        out.reserve(st.size());
        for (std::int32_t s : st) out.push_back(static_cast<shmprim_status>(s));
        return out;
    }
    std::uint32_t workers() const { return shmprim_pool_workers(h_.get()); }
    /** Kills every worker now (Python's terminate). */
    void terminate() { shmprim_pool_terminate(h_.get()); }

private:
    detail::handle<shmprim_pool, shmprim_pool_close> h_;
};

/** A barrier for a fixed number of parties (Python's Barrier). wait()
 * throws SHMPRIM_BROKEN_BARRIER when broken, aborted or reset. */
class barrier {
public:
    static barrier create(const std::string &name, uint32_t parties, const options &o = {}) {
        shmprim_options c = o.c();
        return barrier(detail::make<shmprim_barrier>(
            [&](shmprim_barrier **out) { return shmprim_barrier_create(name.c_str(), parties, &c, out); }));
    }
    static barrier open(const std::string &name) {
        return barrier(detail::make<shmprim_barrier>(
            [&](shmprim_barrier **out) { return shmprim_barrier_open(name.c_str(), out); }));
    }
    static barrier anonymous(uint32_t parties) {
        return barrier(detail::make<shmprim_barrier>(
            [&](shmprim_barrier **out) { return shmprim_barrier_anonymous(parties, out); }));
    }
    static void unlink(const std::string &name) { detail::check(shmprim_barrier_unlink(name.c_str())); }
    /** Waits for every party; the arrival index, 0 to parties() - 1. */
    std::size_t wait() { return wait_ns(-1); }
    /** Waits at most `d`; a timeout throws SHMPRIM_TIMEOUT and breaks the
     * barrier for the others, as in Python. */
    template <class Rep, class Period>
    std::size_t wait_for(std::chrono::duration<Rep, Period> d) { return wait_ns(detail::to_ns(d)); }
    void abort() { detail::check(shmprim_barrier_abort(h_.get())); }
    void reset() { detail::check(shmprim_barrier_reset(h_.get())); }
    uint32_t parties() const { return info().parties; }
    uint32_t n_waiting() const { return info().n_waiting; }
    bool broken() const { return info().broken; }

private:
    explicit barrier(shmprim_barrier *p) : h_(p) {}
    struct state {
        uint32_t parties = 0, n_waiting = 0;
        bool broken = false;
    };
    state info() const {
        state s;
        detail::check(shmprim_barrier_info(h_.get(), &s.parties, &s.n_waiting, &s.broken));
        return s;
    }
    std::size_t wait_ns(int64_t ns) {
        std::size_t index = 0;
        detail::check(shmprim_barrier_wait(h_.get(), ns, &index));
        return index;
    }
    detail::handle<shmprim_barrier, shmprim_barrier_close> h_;
};


/** The SHMPRIM_TYPE_* code of an element type of value<T> and array<T>. */
template <class T>
struct type_code;
#define SHMPRIM_HPP_TYPE(T, CODE) \
    template <>                   \
    struct type_code<T> {         \
        static constexpr uint32_t value = CODE; \
    };
SHMPRIM_HPP_TYPE(bool, SHMPRIM_TYPE_BOOL)
SHMPRIM_HPP_TYPE(int8_t, SHMPRIM_TYPE_I8)
SHMPRIM_HPP_TYPE(uint8_t, SHMPRIM_TYPE_U8)
SHMPRIM_HPP_TYPE(int16_t, SHMPRIM_TYPE_I16)
SHMPRIM_HPP_TYPE(uint16_t, SHMPRIM_TYPE_U16)
SHMPRIM_HPP_TYPE(int32_t, SHMPRIM_TYPE_I32)
SHMPRIM_HPP_TYPE(uint32_t, SHMPRIM_TYPE_U32)
SHMPRIM_HPP_TYPE(int64_t, SHMPRIM_TYPE_I64)
SHMPRIM_HPP_TYPE(uint64_t, SHMPRIM_TYPE_U64)
SHMPRIM_HPP_TYPE(float, SHMPRIM_TYPE_F32)
SHMPRIM_HPP_TYPE(double, SHMPRIM_TYPE_F64)
#undef SHMPRIM_HPP_TYPE

namespace detail {
/* The bytes an element is stored as: bool as one byte (any nonzero is true),
 * so bytes another process wrote are never an invalid C++ bool. */
template <class T>
using stored_t = std::conditional_t<std::is_same_v<T, bool>, uint8_t, T>;
template <class T>
T from_stored(stored_t<T> s) {
    if constexpr (std::is_same_v<T, bool>) return s != 0;
    else return s;
}
template <class T>
stored_t<T> to_stored(T v) {
    return static_cast<stored_t<T>>(v);
}
}  // namespace detail

/** A typed value in shared memory (Python's Value(typecode)), with a lock
 * unless created with no_lock; the same object as a Rust Value<T>. */
template <class T>
class value {
    using S = detail::stored_t<T>;
    static constexpr uint32_t code = type_code<T>::value;

public:
    static value create(const std::string &name, T initial = T{}, const options &o = {},
                        bool no_lock = false) {
        shmprim_options c = o.c();
        if (no_lock) c.flags |= SHMPRIM_NO_LOCK;
        S init = detail::to_stored(initial);
        return value(detail::make<shmprim_value>([&](shmprim_value **out) {
            return shmprim_value_create(name.c_str(), code, &init, &c, out);
        }));
    }
    static value open(const std::string &name) {
        return value(detail::make<shmprim_value>(
            [&](shmprim_value **out) { return shmprim_value_open(name.c_str(), code, out); }));
    }
    static value open_or_create(const std::string &name, T initial = T{}) {
        S init = detail::to_stored(initial);
        return value(detail::make<shmprim_value>([&](shmprim_value **out) {
            return shmprim_value_open_or_create(name.c_str(), code, &init, out, nullptr);
        }));
    }
    static value anonymous(T initial = T{}) {
        S init = detail::to_stored(initial);
        return value(detail::make<shmprim_value>(
            [&](shmprim_value **out) { return shmprim_value_anonymous(code, &init, nullptr, out); }));
    }
    static void unlink(const std::string &name) { detail::check(shmprim_value_unlink(name.c_str())); }

    /** A consistent copy (never blocks on the lock). */
    T get() const {
        S s{};
        detail::check(shmprim_value_get(h_.get(), &s, sizeof s));
        return detail::from_stored<T>(s);
    }
    /** Replaces the value (under the lock, if it has one). */
    void set(T v) {
        S s = detail::to_stored(v);
        detail::check(shmprim_value_set(h_.get(), &s, sizeof s));
    }
    /** Adds `delta` atomically; the previous value. Not for bool. */
    T fetch_add(T delta) {
        static_assert(!std::is_same_v<T, bool>, "no fetch_add on bool");
        T old{};
        detail::check(shmprim_value_fetch_add(h_.get(), &delta, &old, sizeof delta));
        return old;
    }
    /** Replaces the value with f(value) atomically with respect to other
     * writers; returns the previous value. `f` may run more than once and
     * must not throw (a throw terminates: it cannot cross the C library). */
    template <class F>
    T update(F f) {
        S old{};
        detail::check(shmprim_value_update(h_.get(), &trampoline<F>, &f, &old));
        return detail::from_stored<T>(old);
    }
    shmprim_value *native_handle() const noexcept { return h_.get(); }

private:
    explicit value(shmprim_value *p) : h_(p) {}
    template <class F>
    static void trampoline(void *v, void *ctx) noexcept {
        S s;
        std::memcpy(&s, v, sizeof s);
        S n = detail::to_stored<T>((*static_cast<F *>(ctx))(detail::from_stored<T>(s)));
        std::memcpy(v, &n, sizeof n);
    }
    detail::handle<shmprim_value, shmprim_value_close> h_;
};

/** A typed array in shared memory (Python's Array(typecode, n)); the same
 * object as a Rust Array<T>. */
template <class T>
class array {
    static_assert(!std::is_same_v<T, bool>, "use array<uint8_t> for flags");
    static constexpr uint32_t code = type_code<T>::value;

public:
    static array create(const std::string &name, std::size_t len, const options &o = {},
                        bool no_lock = false) {
        shmprim_options c = o.c();
        if (no_lock) c.flags |= SHMPRIM_NO_LOCK;
        return array(detail::make<shmprim_array>([&](shmprim_array **out) {
            return shmprim_array_create(name.c_str(), code, len, &c, out);
        }));
    }
    static array open(const std::string &name) {
        return array(detail::make<shmprim_array>(
            [&](shmprim_array **out) { return shmprim_array_open(name.c_str(), code, out); }));
    }
    static array anonymous(std::size_t len) {
        return array(detail::make<shmprim_array>(
            [&](shmprim_array **out) { return shmprim_array_anonymous(code, len, nullptr, out); }));
    }
    static void unlink(const std::string &name) { detail::check(shmprim_array_unlink(name.c_str())); }
    std::size_t size() const noexcept { return shmprim_array_len(h_.get()); }
    T get(std::size_t i) const {
        T v{};
        detail::check(shmprim_array_read(h_.get(), i, &v, 1));
        return v;
    }
    void set(std::size_t i, T v) { detail::check(shmprim_array_write(h_.get(), i, &v, 1)); }
    void read(std::size_t start, T *out, std::size_t n) const {
        detail::check(shmprim_array_read(h_.get(), start, out, n));
    }
    void write(std::size_t start, const T *in, std::size_t n) {
        detail::check(shmprim_array_write(h_.get(), start, in, n));
    }
    std::vector<T> to_vector() const {
        std::vector<T> v(size());
        read(0, v.data(), v.size());
        return v;
    }
    T fetch_add(std::size_t i, T delta) {
        T old{};
        detail::check(shmprim_array_fetch_add(h_.get(), i, &delta, &old, sizeof delta));
        return old;
    }
    /** Runs f(T *elems, size_t len, bool owner_died) holding the lock
     * (Python's `with arr.get_lock():`); after an owner died, f returns
     * whether the elements are consistent again. Returns whether the
     * previous holder had died. `f` must not throw. */
    template <class F, class Rep = int64_t, class Period = std::nano>
    bool with_lock(F f, std::chrono::duration<Rep, Period> timeout = forever) {
        shmprim_status st = shmprim_array_with_lock(h_.get(), detail::to_ns(timeout), &trampoline<F>, &f);
        if (st == SHMPRIM_OWNER_DIED) return true;
        detail::check(st);
        return false;
    }
    shmprim_array *native_handle() const noexcept { return h_.get(); }

private:
    explicit array(shmprim_array *p) : h_(p) {}
    template <class F>
    static int32_t trampoline(void *elems, std::size_t len, bool died, void *ctx) noexcept {
        return (*static_cast<F *>(ctx))(static_cast<T *>(elems), len, died) ? 1 : 0;
    }
    detail::handle<shmprim_array, shmprim_array_close> h_;
};

/** A queue of T between processes (Python's Queue for plain data); the same
 * object as a Rust Queue<T> of a T with this size and alignment. */
template <class T>
class queue {
    static_assert(std::is_trivially_copyable_v<T>, "elements are copied as bytes");

public:
    static queue create(const std::string &name, std::size_t capacity, const options &o = {}) {
        shmprim_options c = o.c();
        return queue(detail::make<shmprim_queue>([&](shmprim_queue **out) {
            return shmprim_queue_create(name.c_str(), capacity, sizeof(T), alignof(T), &c, out);
        }));
    }
    static queue open(const std::string &name) {
        queue q(detail::make<shmprim_queue>(
            [&](shmprim_queue **out) { return shmprim_queue_open(name.c_str(), out); }));
        if (shmprim_queue_elem_size(q.h_.get()) != sizeof(T))
            detail::raise(SHMPRIM_INCOMPATIBLE, "queue<T>::open: the queue's elements are not sizeof(T) bytes");
        return q;
    }
    static queue anonymous(std::size_t capacity) {
        return queue(detail::make<shmprim_queue>([&](shmprim_queue **out) {
            return shmprim_queue_anonymous(capacity, sizeof(T), alignof(T), out);
        }));
    }
    static void unlink(const std::string &name) { detail::check(shmprim_queue_unlink(name.c_str())); }
    /** Puts `v`, waiting for room as long as it takes. */
    void put(const T &v) { detail::check(shmprim_queue_put(h_.get(), &v, sizeof v, -1)); }
    /** Puts `v` if there is room now (Python's put_nowait). */
    bool try_put(const T &v) { return put_status(v, 0); }
    /** Puts `v`, waiting at most `d` for room. */
    template <class Rep, class Period>
    bool put_for(const T &v, std::chrono::duration<Rep, Period> d) {
        return put_status(v, std::max<int64_t>(1, detail::to_ns(d)));
    }
    /** Takes the oldest element; throws SHMPRIM_CLOSED once shut and drained. */
    T get() { return *get_ns(-1); }
    /** Takes the oldest element if there is one now (Python's get_nowait). */
    std::optional<T> try_get() { return get_ns(0); }
    /** Takes the oldest element, waiting at most `d`. */
    template <class Rep, class Period>
    std::optional<T> get_for(std::chrono::duration<Rep, Period> d) {
        return get_ns(std::max<int64_t>(1, detail::to_ns(d)));
    }
    /** Elements queued now (Python's qsize; a snapshot). */
    std::size_t size() const {
        std::size_t n = 0;
        detail::check(shmprim_queue_len(h_.get(), &n, nullptr));
        return n;
    }
    /** Shuts the queue for every process: puts fail, gets drain then fail. */
    void shutdown(bool immediate = false) { detail::check(shmprim_queue_shutdown(h_.get(), immediate)); }
    shmprim_queue *native_handle() const noexcept { return h_.get(); }

private:
    explicit queue(shmprim_queue *p) : h_(p) {}
    bool put_status(const T &v, int64_t ns) {
        shmprim_status st = shmprim_queue_put(h_.get(), &v, sizeof v, ns);
        if (st == SHMPRIM_FULL || st == SHMPRIM_TIMEOUT) return false;
        detail::check(st);
        return true;
    }
    std::optional<T> get_ns(int64_t ns) {
        T v;
        shmprim_status st = shmprim_queue_get(h_.get(), &v, sizeof v, nullptr, ns);
        if (st == SHMPRIM_EMPTY || st == SHMPRIM_TIMEOUT) return std::nullopt;
        detail::check(st);
        return v;
    }
    detail::handle<shmprim_queue, shmprim_queue_close> h_;
};

/** A queue of byte messages between processes; the same object as a Rust
 * ByteQueue. */
class byte_queue {
public:
    static byte_queue create(const std::string &name, std::size_t capacity, std::size_t max_message,
                             const options &o = {}) {
        shmprim_options c = o.c();
        return byte_queue(detail::make<shmprim_byte_queue>([&](shmprim_byte_queue **out) {
            return shmprim_byte_queue_create(name.c_str(), capacity, max_message, &c, out);
        }));
    }
    static byte_queue open(const std::string &name) {
        return byte_queue(detail::make<shmprim_byte_queue>(
            [&](shmprim_byte_queue **out) { return shmprim_byte_queue_open(name.c_str(), out); }));
    }
    static byte_queue anonymous(std::size_t capacity, std::size_t max_message) {
        return byte_queue(detail::make<shmprim_byte_queue>([&](shmprim_byte_queue **out) {
            return shmprim_byte_queue_anonymous(capacity, max_message, out);
        }));
    }
    static void unlink(const std::string &name) { detail::check(shmprim_byte_queue_unlink(name.c_str())); }
    void put(std::string_view msg) { detail::check(shmprim_byte_queue_put(h_.get(), msg.data(), msg.size(), -1)); }
    bool try_put(std::string_view msg) { return put_status(msg, 0); }
    template <class Rep, class Period>
    bool put_for(std::string_view msg, std::chrono::duration<Rep, Period> d) {
        return put_status(msg, std::max<int64_t>(1, detail::to_ns(d)));
    }
    /** Takes the oldest message; throws SHMPRIM_CLOSED once shut and drained. */
    std::string get() { return *get_ns(-1); }
    std::optional<std::string> try_get() { return get_ns(0); }
    template <class Rep, class Period>
    std::optional<std::string> get_for(std::chrono::duration<Rep, Period> d) {
        return get_ns(std::max<int64_t>(1, detail::to_ns(d)));
    }
    std::size_t size() const {
        std::size_t n = 0;
        detail::check(shmprim_byte_queue_len(h_.get(), &n, nullptr));
        return n;
    }
    void shutdown(bool immediate = false) { detail::check(shmprim_byte_queue_shutdown(h_.get(), immediate)); }
    shmprim_byte_queue *native_handle() const noexcept { return h_.get(); }

private:
    explicit byte_queue(shmprim_byte_queue *p) : h_(p) {}
    bool put_status(std::string_view msg, int64_t ns) {
        shmprim_status st = shmprim_byte_queue_put(h_.get(), msg.data(), msg.size(), ns);
        if (st == SHMPRIM_FULL || st == SHMPRIM_TIMEOUT) return false;
        detail::check(st);
        return true;
    }
    std::optional<std::string> get_ns(int64_t ns) {
        std::string buf(256, '\0');
        for (;;) {
            std::size_t len = 0;
            shmprim_status st = shmprim_byte_queue_get(h_.get(), buf.data(), buf.size(), &len, ns);
            if (st == SHMPRIM_BUFFER_TOO_SMALL) {
                buf.resize(len);  // the message stays queued; another consumer may take it first
                continue;
            }
            if (st == SHMPRIM_EMPTY || st == SHMPRIM_TIMEOUT) return std::nullopt;
            detail::check(st);
            buf.resize(len);
            return buf;
        }
    }
    detail::handle<shmprim_byte_queue, shmprim_byte_queue_close> h_;
};

/** One claimed end of a pipe; closing it (destructor) is end-of-file for
 * the peer. Use it from one thread at a time. */
class pipe_end {
public:
    /** Sends one message, waiting as long as it takes for room. */
    void send(std::string_view msg) { detail::check(send_ns(msg, -1)); }
    /** Sends one message, waiting at most `d`; false on timeout. */
    template <class Rep, class Period>
    bool send_for(std::string_view msg, std::chrono::duration<Rep, Period> d) {
        shmprim_status st = send_ns(msg, detail::to_ns(d));
        if (st == SHMPRIM_TIMEOUT || st == SHMPRIM_FULL) return false;
        detail::check(st);
        return true;
    }
    /** Receives the next message; throws SHMPRIM_CLOSED at end-of-file. */
    std::string recv() { return *recv_ns(-1); }
    /** Receives the next message, waiting at most `d`; nullopt on timeout. */
    template <class Rep, class Period>
    std::optional<std::string> recv_for(std::chrono::duration<Rep, Period> d) {
        return recv_ns(detail::to_ns(d));
    }
    /** Whether recv() would return at once, waiting at most `d`. */
    template <class Rep, class Period>
    bool poll(std::chrono::duration<Rep, Period> d) {
        bool ready = false;
        detail::check(shmprim_pipe_poll(h_.get(), detail::to_ns(d), &ready));
        return ready;
    }
    shmprim_pipe_end *native_handle() const noexcept { return h_.get(); }

private:
    friend class pipe;
    explicit pipe_end(shmprim_pipe_end *p) : h_(p) {}
    shmprim_status send_ns(std::string_view msg, int64_t ns) {
        return shmprim_pipe_send(h_.get(), msg.data(), msg.size(), ns);
    }
    std::optional<std::string> recv_ns(int64_t ns) {
        std::string buf(256, '\0');
        for (;;) {
            std::size_t len = 0;
            shmprim_status st = shmprim_pipe_recv(h_.get(), buf.data(), buf.size(), &len, ns);
            if (st == SHMPRIM_BUFFER_TOO_SMALL) {
                buf.resize(len);  // the size the message needs; it is still queued
                continue;
            }
            if (st == SHMPRIM_TIMEOUT || st == SHMPRIM_EMPTY) return std::nullopt;
            detail::check(st);
            buf.resize(len);
            return buf;
        }
    }
    detail::handle<shmprim_pipe_end, shmprim_pipe_end_close> h_;
};

/** A pipe between two processes (Python's Pipe(duplex)); each process
 * claims one end. */
class pipe {
public:
    static pipe create(const std::string &name, std::size_t capacity, std::size_t max_message,
                       bool duplex = true, const options &o = {}) {
        shmprim_options c = o.c();
        return pipe(detail::make<shmprim_pipe>([&](shmprim_pipe **out) {
            return shmprim_pipe_create(name.c_str(), capacity, max_message, duplex ? 1u : 0u, &c, out);
        }));
    }
    static pipe open(const std::string &name) {
        return pipe(detail::make<shmprim_pipe>(
            [&](shmprim_pipe **out) { return shmprim_pipe_open(name.c_str(), out); }));
    }
    static pipe anonymous(std::size_t capacity, std::size_t max_message, bool duplex = true) {
        return pipe(detail::make<shmprim_pipe>([&](shmprim_pipe **out) {
            return shmprim_pipe_anonymous(capacity, max_message, duplex ? 1u : 0u, out);
        }));
    }
    static void unlink(const std::string &name) { detail::check(shmprim_pipe_unlink(name.c_str())); }
    /** Claims end A (the receiving end of a simplex pipe). */
    pipe_end end_a() {
        return pipe_end(detail::make<shmprim_pipe_end>(
            [&](shmprim_pipe_end **out) { return shmprim_pipe_end_a(h_.get(), out); }));
    }
    /** Claims end B (the sending end of a simplex pipe). */
    pipe_end end_b() {
        return pipe_end(detail::make<shmprim_pipe_end>(
            [&](shmprim_pipe_end **out) { return shmprim_pipe_end_b(h_.get(), out); }));
    }
    std::size_t max_message() const noexcept { return shmprim_pipe_max_message(h_.get()); }

private:
    explicit pipe(shmprim_pipe *p) : h_(p) {}
    detail::handle<shmprim_pipe, shmprim_pipe_close> h_;
};

template <class T>
class spsc;

/** The producer end of an SPSC ring; closing it (destructor) is
 * end-of-stream for the consumer. Use it from one thread at a time. */
template <class T>
class spsc_producer {
public:
    /** Pushes `v`, waiting for room as long as it takes; throws
     * SHMPRIM_CLOSED if the consumer end is closed or its process died. */
    void push(const T &v) { detail::check(shmprim_spsc_push(h_.get(), &v, sizeof v, -1)); }
    /** Pushes `v` if there is room now. */
    bool try_push(const T &v) { return push_status(v, 0); }
    /** Pushes `v`, waiting at most `d` for room. */
    template <class Rep, class Period>
    bool push_for(const T &v, std::chrono::duration<Rep, Period> d) {
        return push_status(v, std::max<int64_t>(1, detail::to_ns(d)));
    }
    /** Pushes as many of the `n` elements at `v` as fit now, publishing them
     * at once; returns how many (0 when full). */
    std::size_t push_many(const T *v, std::size_t n) {
        std::size_t pushed = 0;
        detail::check(shmprim_spsc_push_many(h_.get(), v, n, &pushed));
        return pushed;
    }
    shmprim_spsc_producer *native_handle() const noexcept { return h_.get(); }

private:
    friend class spsc<T>;
    explicit spsc_producer(shmprim_spsc_producer *p) : h_(p) {}
    bool push_status(const T &v, int64_t ns) {
        shmprim_status st = shmprim_spsc_push(h_.get(), &v, sizeof v, ns);
        if (st == SHMPRIM_FULL || st == SHMPRIM_TIMEOUT) return false;
        detail::check(st);
        return true;
    }
    detail::handle<shmprim_spsc_producer, shmprim_spsc_producer_close> h_;
};

/** The consumer end of an SPSC ring. Use it from one thread at a time. */
template <class T>
class spsc_consumer {
public:
    /** Takes the oldest element, waiting as long as it takes; throws
     * SHMPRIM_CLOSED at end-of-stream (the producer closed or died, and
     * everything it pushed was taken). */
    T pop() { return *pop_ns(-1); }
    /** Takes the oldest element if there is one now. */
    std::optional<T> try_pop() { return pop_ns(0); }
    /** Takes the oldest element, waiting at most `d`. */
    template <class Rep, class Period>
    std::optional<T> pop_for(std::chrono::duration<Rep, Period> d) {
        return pop_ns(std::max<int64_t>(1, detail::to_ns(d)));
    }
    /** Takes up to `n` of the oldest elements into `out` without waiting;
     * returns how many (0 when empty); throws SHMPRIM_CLOSED at
     * end-of-stream. */
    std::size_t pop_many(T *out, std::size_t n) {
        std::size_t popped = 0;
        shmprim_status st = shmprim_spsc_pop_many(h_.get(), out, n, &popped);
        if (st == SHMPRIM_EMPTY) return 0;
        detail::check(st);
        return popped;
    }
    shmprim_spsc_consumer *native_handle() const noexcept { return h_.get(); }

private:
    friend class spsc<T>;
    explicit spsc_consumer(shmprim_spsc_consumer *p) : h_(p) {}
    std::optional<T> pop_ns(int64_t ns) {
        T v;
        shmprim_status st = shmprim_spsc_pop(h_.get(), &v, sizeof v, nullptr, ns);
        if (st == SHMPRIM_EMPTY || st == SHMPRIM_TIMEOUT) return std::nullopt;
        detail::check(st);
        return v;
    }
    detail::handle<shmprim_spsc_consumer, shmprim_spsc_consumer_close> h_;
};

/** A single-producer single-consumer ring of T between two processes; the
 * same object as a Rust SpscRing<T> of a T with this size and alignment.
 * One process claims the producer end, one the consumer end. */
template <class T>
class spsc {
    static_assert(std::is_trivially_copyable_v<T>, "elements are copied as bytes");

public:
    static spsc create(const std::string &name, std::size_t capacity, const options &o = {}) {
        shmprim_options c = o.c();
        return spsc(detail::make<shmprim_spsc>([&](shmprim_spsc **out) {
            return shmprim_spsc_create(name.c_str(), capacity, sizeof(T), alignof(T), &c, out);
        }));
    }
    static spsc open(const std::string &name) {
        spsc r(detail::make<shmprim_spsc>(
            [&](shmprim_spsc **out) { return shmprim_spsc_open(name.c_str(), out); }));
        if (shmprim_spsc_elem_size(r.h_.get()) != sizeof(T))
            detail::raise(SHMPRIM_INCOMPATIBLE, "spsc<T>::open: the ring's elements are not sizeof(T) bytes");
        return r;
    }
    static spsc anonymous(std::size_t capacity) {
        return spsc(detail::make<shmprim_spsc>([&](shmprim_spsc **out) {
            return shmprim_spsc_anonymous(capacity, sizeof(T), alignof(T), out);
        }));
    }
    static void unlink(const std::string &name) { detail::check(shmprim_spsc_unlink(name.c_str())); }
    /** Claims the producer end; throws SHMPRIM_INVALID_ARGUMENT while a live
     * process holds it. */
    spsc_producer<T> producer() {
        return spsc_producer<T>(detail::make<shmprim_spsc_producer>(
            [&](shmprim_spsc_producer **out) { return shmprim_spsc_claim_producer(h_.get(), out); }));
    }
    /** Claims the consumer end; as producer(). */
    spsc_consumer<T> consumer() {
        return spsc_consumer<T>(detail::make<shmprim_spsc_consumer>(
            [&](shmprim_spsc_consumer **out) { return shmprim_spsc_claim_consumer(h_.get(), out); }));
    }
    /** Number of slots (the capacity asked for, rounded up to a power of two). */
    std::size_t capacity() const noexcept { return shmprim_spsc_capacity(h_.get()); }
    shmprim_spsc *native_handle() const noexcept { return h_.get(); }

private:
    explicit spsc(shmprim_spsc *p) : h_(p) {}
    detail::handle<shmprim_spsc, shmprim_spsc_close> h_;
};

}  // namespace shmprim

/** Found by argument-dependent lookup: a status as a std::error_code. */
inline std::error_code make_error_code(shmprim_status s) noexcept {
    return std::error_code(static_cast<int>(s), shmprim::category());
}

#endif /* SHMPRIM_HPP */
