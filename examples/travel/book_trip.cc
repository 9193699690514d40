// book_trip: books a trip (flight, hotel, car) as one Treaty saga through
// the SDK's treaty::Client and prints what happened to each step.
//
// Usage: book_trip --coordinator http://127.0.0.1:7480[,http://...] \
//          --services http://127.0.0.1:7500 [--car-class none]

#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "treaty/client.h"

using nlohmann::json;

int main(int argc, char** argv) {
  CLI::App app{"book_trip: submit a travel booking saga to Treaty"};
  std::string coordinator = "http://127.0.0.1:7480";
  std::string services = "http://127.0.0.1:7500";
  std::string traveller = "Ada";
  std::string car_class = "compact";
  app.add_option("--coordinator", coordinator, "Coordinator URL(s), comma-separated")
      ->capture_default_str();
  app.add_option("--services", services)->capture_default_str();
  app.add_option("--traveller", traveller)->capture_default_str();
  app.add_option("--car-class", car_class, "'none' makes the car step fail")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  treaty::ClientOptions options;
  options.coordinators.clear();
  std::stringstream list(coordinator);
  for (std::string c; std::getline(list, c, ',');) options.coordinators.push_back(c);
  treaty::Client client(options);

  treaty::SagaSpec saga;
  saga.timeout_ms = 30000;
  auto step = [&](const std::string& name, const json& payload) {
    saga.steps.push_back({.name = name,
                          .action = services + "/" + name + "/book",
                          .compensate = services + "/" + name + "/cancel",
                          .payload = payload.dump(),
                          .retry = {.max_attempts = 3, .initial_backoff_ms = 100}});
  };
  step("flight", {{"traveller", traveller}, {"from", "LIS"}, {"to", "OSL"}});
  step("hotel", {{"traveller", traveller}, {"nights", 3}});
  step("car", {{"traveller", traveller}, {"class", car_class}});

  auto r = client.SubmitSaga(saga, /*wait=*/true, 35000);
  if (!r.ok()) {
    std::cerr << "book_trip: " << r.status().ToString() << "\n";
    return 1;
  }
  std::cout << "saga " << r->gtid << " finished " << r->state << "\n";
  auto detail = client.Get(r->gtid);
  if (detail.ok()) {
    for (const auto& b : detail->branches) {
      std::cout << "  step " << b.name << ": " << b.state << "\n";
    }
    json full = json::parse(detail->json, nullptr, false);
    std::cout << "  history:\n";
    if (full.is_object() && full.contains("history")) {
      for (const auto& e : full["history"]) {
        std::string branch = e.value("branch", "");
        std::cout << "    " << (branch.empty() ? "(saga)" : branch) << " " << e.value("detail", "")
                  << "\n";
      }
    }
  }
  return r->state == "COMMITTED" ? 0 : 3;
}
