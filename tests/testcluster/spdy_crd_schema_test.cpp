// Unit tests of two pure parts of the test cluster: SPDY/3.1 framing and
// header compression (testcluster/spdy.h, what kubectl port-forward speaks)
// and the CRD structural-schema engine (testcluster/crd_schema.h). The real
// clients drive both end to end in tests/conformance (port_forward_test,
// crd_test); these pin the wire bytes and the edge cases.
#include "testcluster/crd_schema.h"
#include "testcluster/spdy.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

namespace kvb::testcluster {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;

TEST(Spdy, TheHeaderDictionaryIsTheSpecsOne) {
  const std::string& d = spdy::header_dictionary();
  EXPECT_EQ(d.size(), 1423u);
  EXPECT_EQ(adler32(adler32(0, nullptr, 0), reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size())), 0xe3c6a7c2u);
}

TEST(Spdy, HeaderBlocksRoundTripThroughOneZlibStreamPerDirection) {
  spdy::HeaderDeflater out;
  spdy::HeaderInflater in;
  spdy::Headers first{{"streamtype", "error"}, {"port", "8443"}, {"requestid", "0"}};
  spdy::Headers second{{"streamtype", "data"}, {"port", "8443"}, {"requestid", "0"}};
  std::string a = out.encode(first), b = out.encode(second);
  // A zlib stream primed with a dictionary: FDICT set, the dictionary's Adler-32 after the header.
  ASSERT_GE(a.size(), 6u);
  EXPECT_TRUE(static_cast<unsigned char>(a[1]) & 0x20);
  EXPECT_EQ(static_cast<unsigned char>(a[2]), 0xe3);
  auto da = in.decode(a);
  ASSERT_TRUE(da) << da.error().message;
  EXPECT_EQ(*da, first);
  auto db = in.decode(b);
  ASSERT_TRUE(db) << db.error().message;
  EXPECT_EQ(*db, second);
  EXPECT_TRUE(out.encode({}).size() > 0);
}

TEST(Spdy, FramesAreCutFromAByteStreamFedInPieces) {
  spdy::HeaderDeflater def;
  std::string wire = spdy::syn_stream(1, def.encode({{"port", "80"}}), false) + spdy::data_frame(3, "hello", true) +
                     spdy::control_frame(spdy::kPing, 0, std::string("\0\0\0\1", 4));
  spdy::FrameReader r;
  std::vector<spdy::Frame> frames;
  for (char ch : wire) {  // one byte at a time, as WebSocket messages may split it
    r.feed(std::string_view(&ch, 1));
    while (true) {
      auto f = r.next();
      ASSERT_TRUE(f);
      if (!*f) break;
      frames.push_back(**f);
    }
  }
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_TRUE(frames[0].control);
  EXPECT_EQ(frames[0].type, spdy::kSynStream);
  auto syn = spdy::parse_syn_stream(frames[0]);
  ASSERT_TRUE(syn);
  EXPECT_EQ(syn->stream_id, 1u);
  spdy::HeaderInflater inf;
  auto h = inf.decode(syn->header_block);
  ASSERT_TRUE(h);
  EXPECT_THAT(*h, ElementsAre(std::pair<std::string, std::string>{"port", "80"}));
  EXPECT_FALSE(frames[1].control);
  EXPECT_EQ(frames[1].stream_id, 3u);
  EXPECT_EQ(frames[1].flags, spdy::kFlagFin);
  EXPECT_EQ(frames[1].payload, "hello");
  EXPECT_EQ(frames[2].type, spdy::kPing);
  // The wire bytes of a DATA frame: 31-bit stream id, flags, 24-bit length.
  EXPECT_EQ(spdy::data_frame(5, "ab", true), std::string("\0\0\0\5\1\0\0\2ab", 10));
  // A control frame of another version is a protocol error.
  spdy::FrameReader bad;
  bad.feed(std::string("\x80\x02\0\1\0\0\0\0", 8));
  EXPECT_FALSE(bad.next());
}

json::object schema(const char* text) { return json::parse(text).as_object(); }

TEST(CrdSchema, PruneDefaultAndValidate) {
  auto s = schema(R"({"type":"object","properties":{
      "spec":{"type":"object","required":["n"],"properties":{
        "n":{"type":"integer","minimum":1},
        "mode":{"type":"string","default":"fast"},
        "items":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string","maxLength":3}}}},
        "free":{"type":"object","x-kubernetes-preserve-unknown-fields":true},
        "labels":{"type":"object","additionalProperties":{"type":"string"}}}}}})");
  json::value obj = json::parse(R"({"apiVersion":"x/v1","kind":"K","metadata":{"name":"a","odd":1},
      "spec":{"n":0,"junk":1,"items":[{"name":"abcd","x":2}],"free":{"y":{"z":1}},"labels":{"a":"b"},"mode":null}})");
  auto pruned = crd::prune(obj, s);
  EXPECT_THAT(pruned, ::testing::UnorderedElementsAre("spec.junk", "spec.items[0].x"));
  EXPECT_EQ(json::serialize(obj.at("metadata")), R"({"name":"a","odd":1})") << "metadata is the API server's";
  crd::apply_defaults(obj, s);
  EXPECT_EQ(obj.at("spec").at("mode"), "fast") << "a null non-nullable field with a default gets it";
  auto errs = crd::validate(obj, s);
  EXPECT_THAT(errs, ElementsAre("spec.n: Invalid value: 0: spec.n in body should be greater than or equal to 1",
                                "spec.items[0].name: Too long: may not be longer than 3"));
  json::value wrong = json::parse(R"({"spec":{"n":1.5,"labels":{"a":3}}})");
  EXPECT_THAT(crd::validate(wrong, s),
              ElementsAre(R"(spec.n: Invalid value: "number": spec.n in body must be of type integer: "number")",
                          R"(spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer")"));
  json::value status_only = json::parse(R"({"status":{}})");
  EXPECT_TRUE(crd::validate(status_only, s, crd::Part::kStatusOnly).empty()) << "spec's required fields are not a status write's";
}

TEST(CrdSchema, StructuralProblems) {
  auto s = schema(R"({"properties":{"a":{"type":"array"},"b":{"properties":{}},"c":{"x-kubernetes-int-or-string":true}}})");
  EXPECT_THAT(crd::structural_problems(s, "root"),
              ElementsAre("root.type: Required value: must not be empty at the root",
                          "root.properties[a].items: Required value: must be specified",
                          "root.properties[b].type: Required value: must not be empty for specified object fields"));
}

}  // namespace
}  // namespace kvb::testcluster
