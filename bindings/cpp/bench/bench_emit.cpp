// Emit through the C ABI from C++ against Rust's own Fasten::emit, same
// engine settings, same event, in the same run: runs the Rust baseline
// (examples/emit_baseline.rs) as a child process, then the C++ loop, twice
// each (A B A B), and prints p50/p99 of each round and the ratios.
//
//   cmake -S bindings/cpp -B build-release -DFASTEN_CARGO_PROFILE=release
//   cmake --build build-release --target bench_emit && ./build-release/bench_emit
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "fasten.hpp"

namespace {

struct Pcts {
  double p50, p99;
};

Pcts rust_round(const std::string& db, int n) {
  std::string cmd = std::string(FASTEN_EMIT_BASELINE) + " " + db + " " + std::to_string(n);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + cmd);
  char line[256] = {0};
  std::string out;
  while (fgets(line, sizeof line, p)) out += line;
  if (pclose(p) != 0) throw std::runtime_error("baseline failed: " + out);
  Pcts r{0, 0};
  if (std::sscanf(out.c_str(), "rust_emit p50_ns=%lf p99_ns=%lf", &r.p50, &r.p99) != 2)
    throw std::runtime_error("baseline printed: " + out);
  return r;
}

Pcts cpp_round(const std::string& db, int n) {
  fasten::Engine e({{"FASTEN_SERVICE_ID", "bench"},
                    {"FASTEN_NODE_ID", "node-cpp"},
                    {"FASTEN_AUDIT_DSN", "sqlite:///" + db},
                    {"FASTEN_STDOUT", "none"},
                    {"FASTEN_AUDIT_QUEUE_CAPACITY", "262144"}});
  e.register_yaml("domain: sales\ncodes:\n  ORDER_PLACED: { category: order, action: create }\n");
  const int warmup = n / 10;
  std::vector<double> ns;
  ns.reserve(n);
  for (int i = 0; i < warmup + n; i++) {
    auto start = std::chrono::steady_clock::now();
    std::string id = e.emit(fasten::Event("ORDER_PLACED")
                                .actor("alice", "user")
                                .target("order/42")
                                .detail("{\"qty\":" + std::to_string(i) + ",\"sku\":\"WIDGET\"}"));
    auto took = std::chrono::steady_clock::now() - start;
    if (id.empty()) std::abort();
    if (i >= warmup) ns.push_back(std::chrono::duration<double, std::nano>(took).count());
  }
  e.flush(std::chrono::seconds(60));
  std::sort(ns.begin(), ns.end());
  auto pct = [&](double p) { return ns[static_cast<size_t>((ns.size() - 1) * p + 0.5)]; };
  return Pcts{pct(0.50), pct(0.99)};
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 50000;
  char dir[] = "/tmp/fasten-bench-XXXXXX";
  if (!mkdtemp(dir)) return 2;
  std::printf("emit latency, %d emits per round after %d warm-up, SQLite in %s\n", n, n / 10, dir);
  std::printf("%-6s %-5s %10s %10s\n", "round", "lang", "p50 ns", "p99 ns");
  for (int round = 1; round <= 2; round++) {
    std::string base = std::string(dir) + "/r" + std::to_string(round);
    Pcts rust = rust_round(base + "-rust.db", n);
    Pcts cpp = cpp_round(base + "-cpp.db", n);
    std::printf("%-6d %-5s %10.0f %10.0f\n", round, "rust", rust.p50, rust.p99);
    std::printf("%-6d %-5s %10.0f %10.0f\n", round, "c++", cpp.p50, cpp.p99);
    std::printf("round %d: c++/rust p50 %.2fx, p99 %.2fx (goal p50 <= 1.5x)\n", round,
                cpp.p50 / rust.p50, cpp.p99 / rust.p99);
  }
  std::string rm = std::string("rm -rf ") + dir;
  return std::system(rm.c_str()) == 0 ? 0 : 0;
}
