// The C++ wrapper doing what the C examples do, idiomatically: RAII handles,
// std::lock_guard / std::unique_lock over shmprim::mutex, std::chrono
// timeouts, exceptions carrying the status; typed values and arrays; a pipe;
// queues and an SPSC ring of structs.
// Forked children stand in for other processes.
// Prints "cpp_sync: counter 20000, recovered, 3 phases ok".
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

#include "shmprim.hpp"

using namespace std::chrono_literals;

namespace {

std::string unique(const char *what) { return std::string("shmprim-example-cpp-") + what + "-" + std::to_string(getpid()); }

// Runs `body` in a forked child; returns its exit status (0: success).
template <class F>
pid_t spawn(F body) {
    pid_t pid = fork();
    if (pid == 0) {
        int rc = 1;
        try {
            rc = body();
        } catch (const shmprim::error &e) {
            std::fprintf(stderr, "child: %s (%s)\n", e.what(), e.code().message().c_str());
        }
        _exit(rc);
    }
    return pid;
}

bool reap(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct account {
    uint64_t balance;
    uint64_t checksum;
};

}  // namespace

int main() try {
    bool ok = true;

    // 1. Two processes increment a counter guarded by a named mutex.
    const std::string counter_name = unique("counter");
    auto counter = shmprim::mutex::create_for<uint64_t>(counter_name, shmprim::options::unlink_when_closed());
    auto worker = [&] {
        auto m = shmprim::mutex::open(counter_name);
        for (int i = 0; i < 10000; i++) {
            std::lock_guard<shmprim::mutex> g(m);
            m.data_as<uint64_t>() += 1;
        }
        return 0;
    };
    pid_t a = spawn(worker), b = spawn(worker);
    ok = reap(a) && reap(b) && ok;
    uint64_t total;
    {
        std::unique_lock<shmprim::mutex> g(counter, std::defer_lock);
        ok = g.try_lock_for(5s) && ok;
        total = counter.data_as<uint64_t>();
    }
    ok = ok && total == 20000;

    // 2. The owner dies holding the lock; the survivor repairs and recovers.
    const std::string acct_name = unique("account");
    auto acct = shmprim::mutex::create_for<account>(acct_name, shmprim::options::unlink_when_closed());
    pid_t dier = spawn([&] {
        auto m = shmprim::mutex::open(acct_name);
        m.lock();
        m.data_as<account>().balance = 500;  // and dies before the checksum
        _exit(0);
        return 0;
    });
    ok = reap(dier) && ok;
    {
        std::lock_guard<shmprim::mutex> g(acct);
        ok = ok && acct.owner_died();
        account &r = acct.data_as<account>();
        r.checksum = r.balance;  // repair
        acct.consistent();
    }
    {
        std::lock_guard<shmprim::mutex> g(acct);
        ok = ok && !acct.owner_died() && acct.data_as<account>().checksum == 500;
    }

    // 3. Barrier phases with a condvar-announced result, and an event.
    const std::string bar_name = unique("barrier"), cv_name = unique("cv"), ev_name = unique("go");
    auto bar = shmprim::barrier::create(bar_name, 3, shmprim::options::unlink_when_closed());
    auto cv = shmprim::condvar::create(cv_name, shmprim::options::unlink_when_closed());
    auto go = shmprim::event::create(ev_name, shmprim::options::unlink_when_closed());
    auto party = [&] {
        auto b = shmprim::barrier::open(bar_name);
        auto c = shmprim::condvar::open(cv_name);
        auto m = shmprim::mutex::open(counter_name);
        if (!shmprim::event::open(ev_name).wait_for(10s)) return 2;
        for (int phase = 0; phase < 3; phase++) b.wait_for(10s);
        {
            std::lock_guard<shmprim::mutex> g(m);
            m.data_as<uint64_t>() += 1;
        }
        c.notify_all();
        return 0;
    };
    pid_t p1 = spawn(party), p2 = spawn(party);
    go.set();
    for (int phase = 0; phase < 3; phase++) bar.wait_for(10s);
    {
        std::unique_lock<shmprim::mutex> g(counter);
        ok = cv.wait_for(g, 10s, [&] { return counter.data_as<uint64_t>() == 20002; }) && ok;
    }
    ok = reap(p1) && reap(p2) && ok;

    // 4. A Value, an Array and a Pipe shared with a child.
    const std::string v_name = unique("num"), a_name = unique("arr"), p_name = unique("pipe");
    auto num = shmprim::value<double>::create(v_name, 0.0, shmprim::options::unlink_when_closed());
    auto arr = shmprim::array<int32_t>::create(a_name, 10, shmprim::options::unlink_when_closed());
    for (int32_t i = 0; i < 10; i++) arr.set(i, i);
    auto chan = shmprim::pipe::create(p_name, 4096, 512, true, shmprim::options::unlink_when_closed());
    auto here = chan.end_a();
    pid_t echo = spawn([&] {
        shmprim::value<double>::open(v_name).set(3.1415927);
        shmprim::array<int32_t>::open(a_name).with_lock([](int32_t *a, std::size_t n, bool) {
            for (std::size_t i = 0; i < n; i++) a[i] = -a[i];
            return true;
        });
        auto there = shmprim::pipe::open(p_name).end_b();
        try {
            for (;;) there.send("echo: " + there.recv());
        } catch (const shmprim::error &e) {
            return e.status() == SHMPRIM_CLOSED ? 0 : 3;  // end-of-file
        }
    });
    here.send("hello");
    here.send(std::string(300, 'x'));  // larger than the first receive buffer
    ok = here.recv() == "echo: hello" && ok;
    ok = here.recv_for(10s).value_or("") == "echo: " + std::string(300, 'x') && ok;
    {
        auto closing = std::move(here);  // destroyed: the child reads end-of-file
    }
    ok = reap(echo) && ok;
    ok = ok && num.get() == 3.1415927 && arr.to_vector()[9] == -9 && arr.size() == 10;
    ok = ok && num.update([](double x) { return x * 2; }) == 3.1415927 && num.get() == 2 * 3.1415927;

    // 5. A queue of structs between processes, and a byte queue back.
    struct job {
        uint32_t id;
        uint32_t weight;
    };
    const std::string q_name = unique("jobs"), r_name = unique("results");
    auto jobs = shmprim::queue<job>::create(q_name, 8, shmprim::options::unlink_when_closed());
    auto results = shmprim::byte_queue::create(r_name, 8, 64, shmprim::options::unlink_when_closed());
    pid_t worker_proc = spawn([&] {
        auto in = shmprim::queue<job>::open(q_name);
        auto outq = shmprim::byte_queue::open(r_name);
        uint64_t total = 0;
        try {
            for (;;) total += in.get().weight;
        } catch (const shmprim::error &e) {
            if (e.status() != SHMPRIM_CLOSED) return 3;  // shut and drained
        }
        outq.put("total " + std::to_string(total));
        return 0;
    });
    for (uint32_t i = 1; i <= 100; i++) jobs.put(job{i, i});
    jobs.shutdown();
    ok = results.get_for(10s).value_or("") == "total 5050" && ok;
    ok = reap(worker_proc) && ok;
    try {
        jobs.put(job{0, 0});
        ok = false;
    } catch (const shmprim::error &e) {
        ok = ok && e.status() == SHMPRIM_CLOSED;
    }

    // 5b. An SPSC ring of the same structs from a child, read in batches
    //     until end-of-stream (the child's producer end closes as it exits).
    const std::string s_name = unique("stream");
    auto stream = shmprim::spsc<job>::create(s_name, 64, shmprim::options::unlink_when_closed());
    auto rx = stream.consumer();
    pid_t streamer = spawn([&] {
        auto tx = shmprim::spsc<job>::open(s_name).producer();
        for (uint32_t i = 1; i <= 1000; i++) {
            job j{i, i};
            if (i % 2 == 0) {
                tx.push(j);  // waits for room
            } else if (tx.push_many(&j, 1) == 0 && !tx.push_for(j, 10s)) {
                return 4;  // full for 10 s: the parent stopped reading
            }
        }
        return 0;
    });
    uint64_t streamed = 0, next_id = 1;
    try {
        for (;;) {
            job got[16];
            std::size_t n = rx.pop_many(got, 16);
            if (n == 0) {
                auto one = rx.pop_for(10s);
                if (!one) break;  // timed out: the check below fails
                got[0] = *one;
                n = 1;
            }
            for (std::size_t k = 0; k < n; k++) {
                ok = ok && got[k].id == next_id++;
                streamed += got[k].weight;
            }
        }
    } catch (const shmprim::error &e) {
        ok = ok && e.status() == SHMPRIM_CLOSED;  // end-of-stream
    }
    ok = reap(streamer) && ok && streamed == 500500 && next_id == 1001;

    // 6. Errors are exceptions with the status as a std::error_code.
    try {
        shmprim::semaphore::open(ev_name);  // an event, not a semaphore
        ok = false;
    } catch (const shmprim::error &e) {
        ok = ok && e.code() == SHMPRIM_INCOMPATIBLE && e.status() == SHMPRIM_INCOMPATIBLE;
    }
    auto sem = shmprim::semaphore::anonymous(1, 1);
    {
        std::lock_guard<shmprim::semaphore> g(sem);  // Python's `with sem:`
        ok = ok && sem.value() == 0 && !sem.try_acquire();
    }
    try {
        sem.release();  // beyond the bound of 1
        ok = false;
    } catch (const shmprim::error &e) {
        ok = ok && e.code() == SHMPRIM_OVERFLOW;
    }
    bar.abort();
    try {
        bar.wait();
        ok = false;
    } catch (const shmprim::error &e) {
        ok = ok && e.status() == SHMPRIM_BROKEN_BARRIER;
    }

    std::printf("cpp_sync: counter %llu, %s, 3 phases %s\n", (unsigned long long)total,
                ok ? "recovered" : "?", ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
} catch (const shmprim::error &e) {
    std::fprintf(stderr, "cpp_sync: %s\n", e.what());
    return 1;
}
