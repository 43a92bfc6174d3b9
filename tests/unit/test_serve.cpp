// `textscale serve` without a network: request bodies accepted and refused with the right status,
// answers shaped like predict's JSON Lines with shortest float forms, the batch queue's batching
// rules (size cap, arrival order, delay, no wait when every connection is queued, bound, close),
// and the Prometheus text of the metrics.
#define BOOST_TEST_MODULE serve
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <thread>

#include "textscale/serve/batch_queue.h"
#include "textscale/serve/metrics.h"
#include "textscale/serve/request.h"
#include "textscale/serve/response.h"

using namespace textscale::serve;
using namespace std::chrono_literals;

namespace {

const RequestLimits kLimits{3, 10, 4};

int status_of(std::string_view body) {
  const auto parsed = parse_classify_request(body, kLimits);
  if (const auto* error = std::get_if<RequestError>(&parsed)) return error->status;
  return 200;
}

std::shared_ptr<Job> job_of(std::size_t texts) {
  auto job = std::make_shared<Job>();
  job->texts.assign(texts, "t");
  return job;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

BOOST_AUTO_TEST_CASE(json_content_types) {
  BOOST_TEST(is_json_content_type("application/json"));
  BOOST_TEST(is_json_content_type("Application/JSON; charset=utf-8"));
  BOOST_TEST(!is_json_content_type("text/plain"));
  BOOST_TEST(!is_json_content_type("application/x-www-form-urlencoded"));
  BOOST_TEST(!is_json_content_type(""));
}

BOOST_AUTO_TEST_CASE(requests_accepted) {
  auto parsed = parse_classify_request(R"({"text": "a b"})", kLimits);
  auto& one = std::get<ClassifyRequest>(parsed);
  BOOST_TEST(one.single);
  BOOST_TEST(one.texts == std::vector<std::string>{"a b"});
  BOOST_TEST(one.top_k == 0);
  parsed = parse_classify_request(R"({"texts": ["x", "\u00e9t\u00e9"], "top_k": 2})", kLimits);
  auto& two = std::get<ClassifyRequest>(parsed);
  BOOST_TEST(!two.single);
  BOOST_TEST(two.texts == (std::vector<std::string>{"x", "\xC3\xA9t\xC3\xA9"}));
  BOOST_TEST(two.top_k == 2);
  // Blank texts pass here: the model's encoder refuses them (422) as preprocess would.
  BOOST_TEST(status_of(R"({"text": "  "})") == 200);
}

BOOST_AUTO_TEST_CASE(requests_refused) {
  BOOST_TEST(status_of("{") == 400);
  BOOST_TEST(status_of("[1]") == 400);
  BOOST_TEST(status_of(R"({"txt": "a"})") == 400);
  BOOST_TEST(status_of(R"({"text": "a", "texts": ["b"]})") == 400);
  BOOST_TEST(status_of(R"({"text": 5})") == 400);
  BOOST_TEST(status_of(R"({"texts": "a"})") == 400);
  BOOST_TEST(status_of(R"({"texts": ["a", 1]})") == 400);
  BOOST_TEST(status_of(R"({"text": "a", "top_k": 0})") == 400);
  BOOST_TEST(status_of(R"({"text": "a", "top_k": 5})") == 400);
  BOOST_TEST(status_of(R"({"text": "a", "top_k": "2"})") == 400);
  BOOST_TEST(status_of("{\"text\": \"\xff\"}") == 400);  // JSON is UTF-8
  BOOST_TEST(status_of(R"({"texts": []})") == 422);
  BOOST_TEST(status_of(R"({"texts": ["a", "b", "c", "d"]})") == 413);
  const auto parsed = parse_classify_request(R"({"texts": ["a", "01234567890"]})", kLimits);
  const auto& error = std::get<RequestError>(parsed);
  BOOST_TEST(error.status == 413);
  BOOST_TEST(error.message.find("texts[1]") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(answers_like_predict) {
  const std::vector<std::string> names{"World", "Sports", "Business"};
  const float probabilities[] = {0.01f, 0.9f, 0.09f, 0.5f, 0.25f, 0.25f};
  const std::int32_t predicted[] = {1, 0};
  BOOST_TEST(classify_response(names, {probabilities, predicted, 1}, true, 0) ==
             R"({"predicted":"Sports","index":1,"probabilities":{"World":0.01,"Sports":0.9,"Business":0.09}})");
  const auto list = nlohmann::json::parse(classify_response(names, {probabilities, predicted, 2}, false, 2));
  BOOST_TEST(list["predictions"].size() == 2u);
  const auto& second = list["predictions"][1];
  BOOST_TEST(second["predicted"] == "World");
  BOOST_TEST(!second.contains("probabilities"));
  // Most probable first; among equals the lower index.
  BOOST_TEST(second["top"].dump() ==
             R"([{"class":"World","index":0,"probability":0.5},{"class":"Sports","index":1,"probability":0.25}])");
  BOOST_TEST(error_body("a \"quote\"") == R"({"error":"a \"quote\""})");
}

BOOST_AUTO_TEST_CASE(batches_fill_in_arrival_order) {
  BatchQueue queue(4, 0us, 100);
  for (const std::size_t texts : {1u, 2u, 2u, 5u, 1u}) BOOST_REQUIRE(queue.push(job_of(texts)));
  const auto sizes = [](const std::vector<std::shared_ptr<Job>>& batch) {
    std::vector<std::size_t> texts;
    for (const auto& job : batch) texts.push_back(job->texts.size());
    return texts;
  };
  BOOST_TEST(sizes(queue.next_batch()) == (std::vector<std::size_t>{1, 2}));  // 1 + 2 + 2 > 4
  BOOST_TEST(sizes(queue.next_batch()) == (std::vector<std::size_t>{2}));     // 5 does not fit
  BOOST_TEST(sizes(queue.next_batch()) == (std::vector<std::size_t>{5}));     // alone, over max_batch
  BOOST_TEST(sizes(queue.next_batch()) == (std::vector<std::size_t>{1}));
  BOOST_TEST(queue.waiting() == 0);
}

BOOST_AUTO_TEST_CASE(bounded_and_closed) {
  BatchQueue queue(8, 0us, 2);
  BOOST_TEST(queue.push(job_of(1)));
  BOOST_TEST(queue.push(job_of(1)));
  BOOST_TEST(!queue.push(job_of(1)));  // full: the caller answers 503
  queue.close();
  BOOST_TEST(!queue.push(job_of(1)));
  BOOST_TEST(queue.next_batch().size() == 2u);  // drained after close
  BOOST_TEST(queue.next_batch().empty());
}

BOOST_AUTO_TEST_CASE(waits_for_other_connections_only) {
  // One open connection with its request queued: nobody else can join, no wait.
  BatchQueue alone(8, 10s, 100);
  alone.connection_opened();
  BOOST_REQUIRE(alone.push(job_of(1)));
  auto start = Clock::now();
  BOOST_TEST(alone.next_batch().size() == 1u);
  BOOST_TEST(seconds_since(start) < 5.0);

  // Three connections, one request: wait for the others' (up to max_delay).
  BatchQueue shared(8, 200ms, 100);
  for (int i = 0; i < 3; ++i) shared.connection_opened();
  BOOST_REQUIRE(shared.push(job_of(1)));
  std::thread late([&] {
    std::this_thread::sleep_for(20ms);
    BOOST_CHECK(shared.push(job_of(1)));
    BOOST_CHECK(shared.push(job_of(1)));
  });
  start = Clock::now();
  BOOST_TEST(shared.next_batch().size() == 3u);  // all three, well before the delay ran out
  BOOST_TEST(seconds_since(start) < 0.19);
  late.join();

  // A connection that stays silent costs at most max_delay.
  BOOST_REQUIRE(shared.push(job_of(1)));
  start = Clock::now();
  BOOST_TEST(shared.next_batch().size() == 1u);
  BOOST_TEST(seconds_since(start) >= 0.15);
}

BOOST_AUTO_TEST_CASE(delay_counts_from_the_model_becoming_free) {
  // A job that queued while the model was busy (longer than max_delay) still waits for the other
  // connection's job once the model is free, rather than leaving alone at once.
  BatchQueue queue(8, 200ms, 100);
  queue.connection_opened();
  queue.connection_opened();
  BOOST_REQUIRE(queue.push(job_of(1)));
  std::this_thread::sleep_for(250ms);  // the model is busy with an earlier batch
  std::thread answered_client([&] {
    std::this_thread::sleep_for(20ms);
    BOOST_CHECK(queue.push(job_of(1)));
  });
  const auto start = Clock::now();
  BOOST_TEST(queue.next_batch().size() == 2u);
  BOOST_TEST(seconds_since(start) < 0.19);
  answered_client.join();
}

BOOST_AUTO_TEST_CASE(prometheus_text) {
  ServeMetrics metrics(6);
  metrics.set_model({"crepe-small", "0123456789ab", "run/a\"b.h5", 4, "onednn"});
  metrics.count_response("/v1/classify", 200);
  metrics.count_response("/v1/classify", 200);
  metrics.count_response("/v1/classify", 503);
  metrics.observe_request(0.003);
  metrics.observe_batch(3, 0.002);
  metrics.observe_batch(6, 0.004);
  const std::string text = metrics.render(2);
  const auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  BOOST_TEST(has(R"(textscale_http_requests_total{handler="/v1/classify",code="200"} 2)"));
  BOOST_TEST(has(R"(textscale_http_requests_total{handler="/v1/classify",code="503"} 1)"));
  BOOST_TEST(has(R"(textscale_batch_size_bucket{le="2"} 0)"));
  BOOST_TEST(has(R"(textscale_batch_size_bucket{le="4"} 1)"));
  BOOST_TEST(has(R"(textscale_batch_size_bucket{le="6"} 2)"));
  BOOST_TEST(has(R"(textscale_batch_size_bucket{le="+Inf"} 2)"));
  BOOST_TEST(has("textscale_batch_size_sum 9"));
  BOOST_TEST(has("textscale_batch_size_count 2"));
  BOOST_TEST(has(R"(textscale_request_duration_seconds_bucket{le="0.0025"} 0)"));
  BOOST_TEST(has(R"(textscale_request_duration_seconds_bucket{le="0.005"} 1)"));
  BOOST_TEST(has("textscale_texts_total 9"));
  BOOST_TEST(has("textscale_queue_requests 2"));
  BOOST_TEST(has(R"(textscale_model_info{model="crepe-small",revision="0123456789ab",checkpoint="run/a\"b.h5",)"
                 R"(classes="4",backend="onednn"} 1)"));
  BOOST_TEST(has("# TYPE textscale_batch_size histogram"));
}
