#include "common/atomic_file.h"
#include "common/base64.h"
#include "common/duration.h"
#include "common/secret.h"
#include "common/subprocess.h"
#include "common/time.h"
#include "common/yaml_json.h"

#include <boost/json/serialize.hpp>
#include "tests/support/test_api_server.h"

#include <gtest/gtest.h>

using namespace std::chrono_literals;

namespace kvb {
namespace {

TEST(Duration, ParsesGoSyntax) {
  EXPECT_EQ(*parse_duration("60s"), 60s);
  EXPECT_EQ(*parse_duration("5m0s"), 5min);
  EXPECT_EQ(*parse_duration("1h30m"), 90min);
  EXPECT_EQ(*parse_duration("250ms"), 250ms);
  EXPECT_EQ(*parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(*parse_duration("0"), 0s);
  EXPECT_EQ(*parse_duration("10us"), 10us);
  EXPECT_EQ(*parse_duration("2h45m30.5s"), 2h + 45min + 30500ms);
}

TEST(Duration, RejectsBadInputWithTheValueInTheMessage) {
  for (const char* bad : {"", "10", "s", "-5s", "1x", "1.s5", "abc"}) {
    auto r = parse_duration(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
    EXPECT_NE(r.error().message.find(std::string("\"") + bad + "\""), std::string::npos) << r.error().message;
  }
}

TEST(Duration, FormatsLikeGo) {
  EXPECT_EQ(format_duration(5min), "5m0s");
  EXPECT_EQ(format_duration(60s), "1m0s");
  EXPECT_EQ(format_duration(90min), "1h30m0s");
  EXPECT_EQ(format_duration(1500ms), "1.5s");
  EXPECT_EQ(format_duration(200ms), "200ms");
  EXPECT_EQ(format_duration(0s), "0s");
  for (std::chrono::nanoseconds d : {std::chrono::nanoseconds(5min), std::chrono::nanoseconds(1h + 1s), std::chrono::nanoseconds(1234ms)}) EXPECT_EQ(*parse_duration(format_duration(d)), d);
}

TEST(Time, Rfc3339RoundTripsWithNanoseconds) {
  auto t = parse_rfc3339("2026-11-25T17:08:00.123456789Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(format_rfc3339(*t, TimePrecision::kNanos), "2026-11-25T17:08:00.123456789Z");
  EXPECT_EQ(format_rfc3339(*t), "2026-11-25T17:08:00Z");
  EXPECT_EQ(format_rfc3339(*t, TimePrecision::kMillis), "2026-11-25T17:08:00.123Z");
}

TEST(Time, OffsetsConvertToUtc) {
  auto a = parse_rfc3339("2026-11-25T19:08:00+02:00");
  auto b = parse_rfc3339("2026-11-25T17:08:00Z");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
}

TEST(Time, RejectsGarbage) {
  for (const char* bad : {"", "2026-11-25", "2026-13-01T00:00:00Z", "2026-11-25T17:08:00", "yesterday"}) {
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
  }
}

TEST(Time, YearsBeyondSixtyFourBitNanosecondsAreAnErrorNotAnOverflow) {
  // Found by libFuzzer: 9999-12-31 overflowed the nanosecond conversion (UBSan).
  for (const char* t : {"9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2262-05-01T00:00:00Z"}) {
    auto r = parse_rfc3339(t);
    ASSERT_FALSE(r) << t;
    EXPECT_NE(r.error().message.find("outside the years"), std::string::npos) << r.error().message;
  }
  EXPECT_TRUE(parse_rfc3339("2261-12-31T23:59:59Z"));
  EXPECT_TRUE(parse_rfc3339("1678-01-01T00:00:00Z"));
}

TEST(Yaml, DocumentsSplitAtMarkersAndNeverLoopForever) {
  // yaml-cpp 0.7's LoadAll loops forever on a document that is just "," (found by libFuzzer).
  auto comma = parse_yaml_documents(",", "comma.yaml");
  ASSERT_TRUE(comma);
  EXPECT_EQ(comma->size(), 1u);
  auto docs = parse_yaml_documents("# a comment\n%YAML 1.2\n---\na: 1\n---\n--- {b: 2}\n...\nc: 3\n", "s.yaml");
  ASSERT_TRUE(docs) << docs.error().message;
  ASSERT_EQ(docs->size(), 4u);
  EXPECT_EQ(boost::json::serialize((*docs)[0]), R"({"a":1})");
  EXPECT_TRUE((*docs)[1].is_null()) << "an empty document between markers";
  EXPECT_EQ(boost::json::serialize((*docs)[2]), R"({"b":2})");
  EXPECT_EQ(boost::json::serialize((*docs)[3]), R"({"c":3})");
  EXPECT_TRUE(parse_yaml_documents("", "empty.yaml")->empty());
  EXPECT_TRUE(parse_yaml_documents("# only a comment\n", "c.yaml")->empty());
  auto bad = parse_yaml_documents("a: 1\n---\nb: 2\nc: [\n", "bad.yaml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("bad.yaml: line "), std::string::npos) << bad.error().message;
}

TEST(Base64, RoundTripsAllLengths) {
  std::string data;
  for (int i = 0; i < 40; ++i) {
    auto enc = base64_encode(data);
    auto dec = base64_decode(enc);
    ASSERT_TRUE(dec);
    EXPECT_EQ(*dec, data);
    data += static_cast<char>(i * 37);
  }
  EXPECT_EQ(base64_encode("hello"), "aGVsbG8=");
  EXPECT_EQ(*base64_decode("aGVs\nbG8="), "hello");
  EXPECT_FALSE(base64_decode("not base64!"));
}

TEST(Secret, RedactReplacesEveryOccurrence) {
  Secret s("sup3r-s3cret");
  EXPECT_EQ(redact("a sup3r-s3cret b sup3r-s3cret", s), "a <redacted> b <redacted>");
}

TEST(AtomicFile, ReplacesContentAndLeavesNoTemporaries) {
  testing::TempDir dir;
  auto p = dir / "record.json";
  ASSERT_TRUE(write_file_atomic(p, "one"));
  ASSERT_TRUE(write_file_atomic(p, "two"));
  EXPECT_EQ(*read_file(p), "two");
  int files = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1);
}

TEST(AtomicFile, ErrorsNameThePath) {
  auto r = write_file_atomic("/nonexistent-dir-kvb/x.json", "x");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/nonexistent-dir-kvb/x.json"), std::string::npos);
  auto rd = read_file("/nonexistent-dir-kvb/y");
  ASSERT_FALSE(rd);
  EXPECT_EQ(rd.error().code, Errc::kNotFound);
}

TEST(Subprocess, CapturesOutputExitCodeAndStdin) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", "cat; echo err >&2; exit 3"};
  spec.stdin_data = "hello";
  auto r = run_process(spec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "hello");
  EXPECT_EQ(r->err, "err\n");
}

TEST(Subprocess, PassesArgvWithoutAShell) {
  ProcessSpec spec;
  spec.argv = {"printf", "%s|", "a b", "$(echo no)", ";"};
  auto r = run_process(spec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "a b|$(echo no)|;|");
}

TEST(Subprocess, KillsOnTimeout) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", "sleep 30"};
  spec.timeout = 200ms;
  auto start = std::chrono::steady_clock::now();
  auto r = run_process(spec);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(Subprocess, MissingProgramIsNotFound) {
  ProcessSpec spec;
  spec.argv = {"kvb-no-such-program-xyz"};
  auto r = run_process(spec);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNotFound);
  EXPECT_NE(r.error().message.find("kvb-no-such-program-xyz"), std::string::npos);
}

TEST(Subprocess, EnvironmentOverrides) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", "printf %s \"$KVB_TEST_VAR\""};
  spec.env_overrides = {{"KVB_TEST_VAR", "value 1"}};
  auto r = run_process(spec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "value 1");
}

}  // namespace
}  // namespace kvb

#include "common/allocator.h"
#include "common/bounded_queue.h"

#include <sys/resource.h>

#include <cstring>
#include <thread>

namespace kvb {
namespace {

TEST(BoundedQueue, TryPushAndTryPopNeverWait) {
  BoundedQueue<int> q(2);
  EXPECT_FALSE(q.try_pop()) << "empty";
  EXPECT_TRUE(q.try_push(1));
  EXPECT_TRUE(q.try_push(2));
  EXPECT_FALSE(q.try_push(3)) << "full: dropped, not waited for";
  EXPECT_EQ(q.try_pop(), 1);
  EXPECT_TRUE(q.push(4)) << "try_pop made room for a blocking push";
  q.close();
  EXPECT_FALSE(q.try_push(5)) << "closed";
  EXPECT_EQ(q.try_pop(), 2);
  EXPECT_EQ(q.pop(), 4);
  EXPECT_FALSE(q.pop());
}

// Minor page faults of the calling thread while it touches a fresh 16 MiB
// buffer (4,096 pages), freed again before it returns.
[[maybe_unused]] long faults_touching_a_new_buffer() {
  rusage before{}, after{};
  ::getrusage(RUSAGE_THREAD, &before);
  auto* p = static_cast<char*>(std::malloc(16 << 20));
  std::memset(p, 1, 16 << 20);
  asm volatile("" : : "r"(p) : "memory");  // the stores must happen although the buffer is freed
  std::free(p);
  ::getrusage(RUSAGE_THREAD, &after);
  return after.ru_minflt - before.ru_minflt;
}

// What tune_allocator_for_streaming is for: a worker thread that frees a
// pack-sized buffer and allocates the next one reuses the pages it has, instead of
// glibc unmapping the empty heap and the kernel faulting 4,096 zeroed pages in again.
TEST(Allocator, AWorkerThreadsSecondBufferReusesTheFirstOnesPages) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer has its own allocator; mallopt does not apply";
#else
  tune_allocator_for_streaming();
  long first = 0, second = 0;
  std::thread([&] {
    first = faults_touching_a_new_buffer();
    second = faults_touching_a_new_buffer();
  }).join();
  EXPECT_GT(first, 2000) << "the first buffer is new memory";
  EXPECT_LT(second, 200) << "the second buffer lies in the pages the first one left (first: " << first << " faults)";
#endif
}

}  // namespace
}  // namespace kvb
