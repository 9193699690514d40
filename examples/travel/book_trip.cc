// book_trip: books a trip (flight, hotel, car) as one Treaty saga and prints
// what happened to each step.
//
// Usage: book_trip --coordinator http://127.0.0.1:7480 \
//          --services http://127.0.0.1:7500 [--car-class none]

#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "http/http_client.h"

using nlohmann::json;

int main(int argc, char** argv) {
  CLI::App app{"book_trip: submit a travel booking saga to Treaty"};
  std::string coordinator = "http://127.0.0.1:7480";
  std::string services = "http://127.0.0.1:7500";
  std::string traveller = "Ada";
  std::string car_class = "compact";
  app.add_option("--coordinator", coordinator)->capture_default_str();
  app.add_option("--services", services)->capture_default_str();
  app.add_option("--traveller", traveller)->capture_default_str();
  app.add_option("--car-class", car_class, "'none' makes the car step fail")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  json steps = json::array();
  auto step = [&](const std::string& name, json payload) {
    steps.push_back({{"name", name},
                     {"action", services + "/" + name + "/book"},
                     {"compensate", services + "/" + name + "/cancel"},
                     {"payload", payload},
                     {"retry", {{"max_attempts", 3}, {"initial_backoff_ms", 100}}}});
  };
  step("flight", {{"traveller", traveller}, {"from", "LIS"}, {"to", "OSL"}});
  step("hotel", {{"traveller", traveller}, {"nights", 3}});
  step("car", {{"traveller", traveller}, {"class", car_class}});
  json saga = {{"steps", steps}, {"wait", true}, {"timeout_ms", 30000}};

  auto r = treaty::HttpFetch("POST", coordinator + "/v1/sagas", saga.dump(),
                             {{"Content-Type", "application/json"}}, 35000);
  if (!r.ok()) {
    std::cerr << "book_trip: cannot reach the coordinator: " << r.status().ToString() << "\n";
    return 1;
  }
  json out = json::parse(r->body, nullptr, false);
  if (r->status >= 400 || out.is_discarded()) {
    std::cerr << "book_trip: coordinator answered " << r->status << ": " << r->body << "\n";
    return 1;
  }
  const std::string gtid = out["gtid"];
  std::cout << "saga " << gtid << " finished " << out["state"].get<std::string>() << "\n";
  auto d = treaty::HttpFetch("GET", coordinator + "/v1/transactions/" + gtid);
  if (d.ok() && d->status == 200) {
    json detail = json::parse(d->body);
    for (const auto& b : detail["branches"]) {
      std::cout << "  step " << b["name"].get<std::string>() << ": "
                << b["state"].get<std::string>() << "\n";
    }
    std::cout << "  history:\n";
    for (const auto& e : detail["history"]) {
      std::string branch = e["branch"];
      std::cout << "    " << (branch.empty() ? "(saga)" : branch) << " "
                << e["detail"].get<std::string>() << "\n";
    }
  }
  return out["state"] == "COMMITTED" ? 0 : 3;
}
