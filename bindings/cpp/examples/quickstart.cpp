// The C++ quick start: one engine, codes from YAML, a request scope, an
// emit, a flush, and the chain verified.
//
//   ./build/quickstart /tmp/quickstart.db
#include <chrono>
#include <iostream>

#include "fasten.hpp"

int main(int argc, char** argv) {
  const std::string db = argc > 1 ? argv[1] : "quickstart.db";
  try {
    fasten::Engine engine({{"FASTEN_SERVICE_ID", "shop"},
                           {"FASTEN_NODE_ID", "node-1"},
                           {"FASTEN_AUDIT_DSN", "sqlite:///" + db},
                           {"FASTEN_STDOUT", "none"}});
    engine.register_yaml(
        "domain: sales\ncodes:\n  ORDER_PLACED: { category: order, action: create }\n");
    {
      fasten::Scope scope;  // a fresh request id for this thread
      scope.set_actor("alice", "user");
      std::string id = engine.emit(fasten::Event("ORDER_PLACED")
                                       .target("order/42")
                                       .detail(R"({"qty":3,"sku":"WIDGET","card":"4242424242424242"})"));
      std::cout << "emitted " << id << " in request " << fasten::Scope::current_request_id() << "\n";
    }
    engine.flush(std::chrono::seconds(5));
    std::cout << fasten::verify("sqlite:///" + db) << "\n";
    // Bad input is an exception naming the field and the rule.
    try {
      engine.emit(fasten::Event("ORDER_PLACED").outcome("maybe"));
    } catch (const fasten::Error& e) {
      std::cout << "refused (" << e.field() << "): " << e.what() << "\n";
    }
  } catch (const fasten::Error& e) {
    std::cerr << "fasten: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
