// The C++ side of the cross-language tests: emits one ORDER_PLACED row
// (actor alice/user, target order/42, detail {"qty":3,"sku":"WIDGET"})
// durably into a store and prints the sealed row as JSON, like the Rust
// emitter (crates/fasten-ffi/examples/emit_one.rs).
//
//   ./build/emit_one_cpp <dsn> <node id> <request id>
#include <chrono>
#include <iostream>

#include "fasten.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: emit_one_cpp <dsn> <node id> <request id>\n";
    return 2;
  }
  try {
    fasten::Engine engine({{"FASTEN_SERVICE_ID", "xlang"},
                           {"FASTEN_NODE_ID", argv[2]},
                           {"FASTEN_AUDIT_DSN", argv[1]},
                           {"FASTEN_STDOUT", "none"}});
    engine.register_yaml(
        "domain: sales\ncodes:\n  ORDER_PLACED: { category: order, action: create }\n");
    std::cout << engine.emit_durable(fasten::Event("ORDER_PLACED")
                                         .actor("alice", "user")
                                         .target("order/42")
                                         .request_id(argv[3])
                                         .detail(R"({"qty":3,"sku":"WIDGET"})"))
              << "\n";
    engine.shutdown(std::chrono::seconds(10));
  } catch (const fasten::Error& e) {
    std::cerr << "fasten: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
