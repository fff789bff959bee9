// shmprim::pool in C++: Pool(3).map over a vector of structs, where one task
// fails (returns nonzero) and one kills its worker; the others come back in
// order. Prints "cpp_pool: 8 ok, 1 failed, 1 lost".
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "shmprim.hpp"

namespace {

struct Job {
    std::int32_t id;
    double weight;
};

struct Answer {
    std::int32_t id;
    double cost;
};

extern "C" int price(const void *task, void *result, void *ctx) {
    const Job &job = *static_cast<const Job *>(task);
    double rate = *static_cast<const double *>(ctx);
    if (job.id == 3) return 7;                 // a task that fails
    if (job.id == 8) std::raise(SIGKILL);      // a task whose worker dies
    *static_cast<Answer *>(result) = Answer{job.id, job.weight * rate};
    return 0;
}

}  // namespace

int main() {
    try {
        shmprim::pool p(3);
        std::vector<Job> jobs;
        for (int i = 0; i < 10; i++) jobs.push_back(Job{i, 1.5 * i});
        std::vector<Answer> answers;
        double rate = 2.0;
        auto st = p.map(price, &rate, jobs, answers);
        int ok = 0, failed = 0, lost = 0;
        for (std::size_t i = 0; i < jobs.size(); i++) {
            if (st[i] == SHMPRIM_OK && answers[i].id == jobs[i].id && answers[i].cost == jobs[i].weight * rate) ok++;
            if (st[i] == SHMPRIM_TASK_FAILED && i == 3) failed++;
            if (st[i] == SHMPRIM_WORKER_DIED && i == 8) lost++;
        }
        std::printf("cpp_pool: %d ok, %d failed, %d lost\n", ok, failed, lost);
        return ok == 8 && failed == 1 && lost == 1 && p.workers() == 3 ? 0 : 1;
    } catch (const shmprim::error &e) {
        std::fprintf(stderr, "cpp_pool: %s\n", e.what());
        return 1;
    }
}
