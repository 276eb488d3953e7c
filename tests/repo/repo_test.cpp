// src/repo: the chunker (sizes, content-defined stability, secret boundaries),
// sealing, key wrapping and blobs (round trips, tampering, wrong keys, edges).
#include "repo/blob.h"
#include "repo/chunker.h"
#include "repo/crypto.h"
#include "tests/repo/test_data.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <set>

namespace kvb::repo {
namespace {
using ::testing::HasSubstr;

// Boundary offsets of a whole buffer, fed as a stream would be.
std::vector<size_t> boundaries(const Chunker& c, const std::vector<uint8_t>& data) {
  std::vector<size_t> out;
  size_t off = 0;
  while (off < data.size()) {
    size_t n = c.cut(std::span(data).subspan(off), true);
    if (n == 0) break;
    off += n;
    out.push_back(off);
  }
  return out;
}

TEST(Chunker, ChunksStayWithinBoundsAndAverageNearTheTarget) {
  Chunker c(ChunkerParams{}, 42);
  auto data = random_data(32 << 20, 1);
  auto b = boundaries(c, data);
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.back(), data.size());
  size_t prev = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    size_t len = b[i] - prev;
    EXPECT_LE(len, c.params().max);
    if (i + 1 < b.size()) {
      EXPECT_GE(len, c.params().min);
    }
    prev = b[i];
  }
  double avg = static_cast<double>(data.size()) / b.size();
  EXPECT_GT(avg, c.params().avg * 0.6);
  EXPECT_LT(avg, c.params().avg * 1.6);
}

TEST(Chunker, AnInsertionMovesOnlyTheBoundariesNearIt) {
  Chunker c(ChunkerParams{}, 7);
  auto a = random_data(16 << 20, 2);
  auto b = a;
  size_t at = 5 << 20;
  std::vector<uint8_t> inserted(1000, 0xab);
  b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), inserted.begin(), inserted.end());
  auto ba = boundaries(c, a), bb = boundaries(c, b);
  std::set<size_t> shifted;
  for (size_t x : bb) shifted.insert(x >= at ? x - inserted.size() : x);
  size_t before = 0, before_same = 0, after = 0, after_same = 0;
  for (size_t x : ba) {
    if (x < at) {
      ++before;
      before_same += shifted.count(x);
    } else if (x > at + 2 * c.params().max) {
      ++after;
      after_same += shifted.count(x);
    }
  }
  EXPECT_EQ(before_same, before) << "boundaries before an insertion never move";
  EXPECT_EQ(after_same, after) << "boundaries well after it realign";
  EXPECT_GT(after, 10u);
}

TEST(Chunker, BoundariesDependOnTheSecretSeed) {
  auto data = random_data(8 << 20, 3);
  auto b1 = boundaries(Chunker(ChunkerParams{}, 1), data);
  auto b2 = boundaries(Chunker(ChunkerParams{}, 2), data);
  std::set<size_t> s1(b1.begin(), b1.end());
  size_t common = 0;
  for (size_t x : b2) common += s1.count(x);
  EXPECT_LT(common, b2.size() / 4);
}

TEST(Chunker, ShortInputsAndStreaming) {
  Chunker c(ChunkerParams{}, 9);
  std::vector<uint8_t> one{7};
  EXPECT_EQ(c.cut(one, true), 1u);
  EXPECT_EQ(c.cut(one, false), 0u) << "not the last bytes: ask for more";
  EXPECT_EQ(c.cut({}, true), 0u);
  auto zeros = std::vector<uint8_t>(3 << 20, 0);
  EXPECT_EQ(c.cut(zeros, false), c.params().max) << "no boundary in zeros: cut at max";
}

TEST(Seal, RoundTripAndEveryKindOfTampering) {
  Key256 key{}, other{};
  key[0] = 1;
  other[0] = 2;
  std::vector<uint8_t> aad{1, 2, 3}, msg{'h', 'e', 'l', 'l', 'o'};
  auto sealed = seal(key, aad, msg);
  EXPECT_EQ(sealed.size(), msg.size() + kSealOverhead);
  auto back = open(key, aad, sealed);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, msg);
  EXPECT_FALSE(open(other, aad, sealed));
  EXPECT_FALSE(open(key, std::vector<uint8_t>{9}, sealed));
  for (size_t i = 0; i < sealed.size(); ++i) {
    auto t = sealed;
    t[i] ^= 0x01;
    EXPECT_FALSE(open(key, aad, t)) << "byte " << i;
  }
  EXPECT_FALSE(open(key, aad, std::span(sealed).first(sealed.size() - 1)));
  EXPECT_FALSE(open(key, aad, std::span(sealed).first(5)));
  EXPECT_NE(seal(key, aad, msg), sealed) << "fresh nonce each time";
}

TEST(KeyFile, RightPasswordUnwrapsWrongPasswordIsNamed) {
  auto master = MasterKey::generate();
  KdfParams p;
  p.n = 1 << 10;  // fast for the test; repositories use 2^15
  auto wrapped = wrap_master_key(master, Secret("correct horse"), p);
  auto back = unwrap_master_key(wrapped, Secret("correct horse"), p);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->encryption, master.encryption);
  EXPECT_EQ(back->mac, master.mac);
  EXPECT_EQ(back->chunker_seed(), master.chunker_seed());
  auto wrong = unwrap_master_key(wrapped, Secret("battery staple"), p);
  ASSERT_FALSE(wrong);
  EXPECT_THAT(wrong.error().message, HasSubstr("wrong password"));
  EXPECT_THAT(wrong.error().message, ::testing::Not(HasSubstr("battery")));
}

TEST(Blob, RoundTripsCompressesWhatCompressesAndDetectsTampering) {
  auto key = MasterKey::generate();
  std::string text;
  while (text.size() < 200000) text += "the quick brown fox jumps over the lazy dog; ";
  std::vector<uint8_t> compressible(text.begin(), text.end());
  auto random = random_data(200000, 5);
  for (const auto* input : {&compressible, &random}) {
    auto b = encode_blob(key, *input);
    auto back = decode_blob(key, b.id, b.bytes);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, *input);
    EXPECT_EQ(b.plaintext_size, input->size());
  }
  auto c = encode_blob(key, compressible);
  EXPECT_TRUE(c.compressed);
  EXPECT_LT(c.bytes.size(), compressible.size() / 10);
  auto r = encode_blob(key, random);
  EXPECT_FALSE(r.compressed) << "random data skips compression";
  EXPECT_EQ(r.bytes.size(), random.size() + 1 + kSealOverhead);
  for (const auto& edge : {std::vector<uint8_t>{}, std::vector<uint8_t>{0x42}}) {
    auto e = encode_blob(key, edge);
    auto back = decode_blob(key, e.id, e.bytes);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, edge);
  }
  auto tampered = c.bytes;
  tampered[tampered.size() / 2] ^= 0x80;
  auto t = decode_blob(key, c.id, tampered);
  ASSERT_FALSE(t);
  EXPECT_THAT(t.error().message, HasSubstr(to_hex(c.id)));
  EXPECT_FALSE(decode_blob(key, r.id, c.bytes)) << "a blob under another id does not open";
  EXPECT_FALSE(decode_blob(MasterKey::generate(), c.id, c.bytes)) << "another repository's key";
  EXPECT_EQ(blob_id(key, compressible), c.id);
  EXPECT_NE(blob_id(MasterKey::generate(), compressible), c.id) << "ids are keyed";
}

TEST(Blob, AChunkThatStartsWithRandomBytesAndGoesOnWithTextIsStillCompressed) {
  auto key = MasterKey::generate();
  auto mixed = random_data(8192, 6);  // a written block, a compressed file's header
  std::string text;
  while (text.size() < 500000) text += "kubelet: volume mounted, guest agent connected; ";
  mixed.insert(mixed.end(), text.begin(), text.end());
  auto b = encode_blob(key, mixed);
  EXPECT_TRUE(b.compressed) << "the sample is spread over the chunk, not only its first 4 KiB";
  EXPECT_LT(b.bytes.size(), mixed.size() / 10);
  auto back = decode_blob(key, b.id, b.bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, mixed);
}

TEST(Blob, AllZero) {
  EXPECT_TRUE(all_zero(std::vector<uint8_t>(1 << 20, 0)));
  EXPECT_TRUE(all_zero({}));
  auto v = std::vector<uint8_t>(1 << 20, 0);
  v[(1 << 20) - 1] = 1;
  EXPECT_FALSE(all_zero(v));
}

}  // namespace
}  // namespace kvb::repo

#include "repo/pack.h"

namespace kvb::repo {
namespace {

TEST(Pack, SelfDescribingAndEveryDamageNamed) {
  auto key = MasterKey::generate();
  PackWriter w;
  std::vector<std::vector<uint8_t>> inputs = {random_data(100000, 11), std::vector<uint8_t>(5000, 'a'), {}, {1}};
  std::vector<EncodedBlob> blobs;
  for (const auto& in : inputs) {
    blobs.push_back(encode_blob(key, in));
    w.add(blobs.back(), in.size() == 1 ? BlobType::kTree : BlobType::kData);
  }
  auto pack = w.finish(key);
  EXPECT_EQ(w.count(), 0u) << "finish empties the writer";
  auto entries = read_pack_trailer(key, pack, "p1");
  ASSERT_TRUE(entries) << entries.error().message;
  ASSERT_EQ(entries->size(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& e = (*entries)[i];
    EXPECT_EQ(e.id, blobs[i].id);
    EXPECT_EQ(e.plaintext_size, inputs[i].size());
    auto back = decode_blob(key, e.id, std::span(pack).subspan(e.offset, e.length));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, inputs[i]);
  }
  EXPECT_EQ((*entries)[3].type, BlobType::kTree);
  EXPECT_EQ(pack_id(pack).size(), 64u);

  auto truncated = read_pack_trailer(key, std::span(pack).first(pack.size() - 10), "p1");
  ASSERT_FALSE(truncated);
  EXPECT_THAT(truncated.error().message, HasSubstr("pack p1"));
  auto tampered_trailer = pack;
  tampered_trailer[tampered_trailer.size() - 20] ^= 1;
  auto t = read_pack_trailer(key, tampered_trailer, "p1");
  ASSERT_FALSE(t);
  EXPECT_THAT(t.error().message, HasSubstr("trailer"));
  auto tampered_blob = pack;
  tampered_blob[(*entries)[0].offset + 40] ^= 1;
  ASSERT_TRUE(read_pack_trailer(key, tampered_blob, "p1")) << "the trailer is intact";
  auto d = decode_blob(key, (*entries)[0].id, std::span(tampered_blob).subspan((*entries)[0].offset, (*entries)[0].length));
  ASSERT_FALSE(d);
  EXPECT_THAT(d.error().message, HasSubstr(to_hex((*entries)[0].id)));
  EXPECT_FALSE(read_pack_trailer(MasterKey::generate(), pack, "p1")) << "another repository's key";
  EXPECT_FALSE(read_pack_trailer(key, {}, "empty"));
}

}  // namespace
}  // namespace kvb::repo

namespace kvb::repo {
namespace {

// A writer handed back an old pack's buffer builds the next pack in it: the
// same entries as a fresh writer, nothing of the old pack left in the new one.
TEST(Pack, ReusedBufferHoldsOnlyTheNewPack) {
  auto key = MasterKey::generate();
  auto a = encode_blob(key, random_data(200000, 3)), b = encode_blob(key, random_data(70000, 4));
  PackWriter w(1 << 20);
  w.add(a);
  auto first = w.finish(key);
  const auto* storage = first.data();
  w.reuse(std::move(first));
  w.add(b);
  auto second = w.finish(key);
  EXPECT_EQ(second.data(), storage) << "the second pack was built in the first one's buffer";
  auto entries = read_pack_trailer(key, second, "p2");
  ASSERT_TRUE(entries) << entries.error().message;
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].id, b.id);
  EXPECT_EQ((*entries)[0].offset, 0u);
  auto back = decode_blob(key, b.id, std::span(second).subspan(0, (*entries)[0].length));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, random_data(70000, 4));

  PackWriter busy;
  busy.add(a);
  std::vector<uint8_t> spare(1 << 20);
  busy.reuse(std::move(spare));
  auto only_a = busy.finish(key);
  auto e2 = read_pack_trailer(key, only_a, "p3");
  ASSERT_TRUE(e2) << "a writer with a pack under way keeps its own buffer";
  ASSERT_EQ(e2->size(), 1u);
  EXPECT_EQ((*e2)[0].id, a.id);
}

}  // namespace
}  // namespace kvb::repo
