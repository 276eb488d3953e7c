// Throughput of the repository's building blocks on one core, side by side:
// FastCDC chunking vs fixed 256 KiB blocks, HMAC-SHA-256 ids, zstd on
// text-like and random data, AES-256-GCM sealing. Then the whole repository
// end to end with one worker and with one per core, to show what the pipeline
// gains. The comparison with restic and borg is bench/repo-vs-peers.
//
//   build/bench/repo_bench [--mib 256]
#include "repo/blob.h"
#include "repo/chunker.h"
#include "repo/crypto.h"
#include "repo/image_map.h"
#include "repo/repository.h"

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <optional>
#include <string>
#include <thread>

namespace {
using Clock = std::chrono::steady_clock;

double mib_per_s(size_t bytes, Clock::duration d) {
  return static_cast<double>(bytes) / (1 << 20) / std::chrono::duration<double>(d).count();
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 256;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--mib") mib = static_cast<size_t>(std::atoi(argv[i + 1]));
  }
  size_t n = mib << 20;
  std::vector<uint8_t> random(n), text(n);
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t x = rng();
    for (size_t j = 0; j < 8; ++j) random[i + j] = static_cast<uint8_t>(x >> (8 * j));
  }
  static const char* words[] = {"kernel ", "virtual ", "machine ", "snapshot ", "backup ", "freeze ", "\n", "0x7f3a ", "libc.so.6 "};
  for (size_t i = 0; i < n;) {
    const char* w = words[rng() % 9];
    for (size_t k = 0; w[k] && i < n; ++k) text[i++] = static_cast<uint8_t>(w[k]);
  }
  auto key = kvb::repo::MasterKey::generate();
  kvb::repo::Chunker chunker(kvb::repo::ChunkerParams{}, key.chunker_seed());

  auto t0 = Clock::now();
  size_t chunks = 0;
  for (size_t off = 0; off < n;) {
    off += chunker.cut(std::span(random).subspan(off), true);
    ++chunks;
  }
  auto cdc = Clock::now() - t0;
  t0 = Clock::now();
  size_t fixed_chunks = 0;
  volatile uint8_t sink = 0;
  for (size_t off = 0; off < n; off += 256 << 10) {
    sink = sink ^ random[off];
    ++fixed_chunks;
  }
  auto fixed = Clock::now() - t0;

  t0 = Clock::now();
  for (size_t off = 0; off < n; off += 256 << 10) (void)kvb::repo::blob_id(key, std::span(random).subspan(off, 256 << 10));
  auto hmac = Clock::now() - t0;

  t0 = Clock::now();
  kvb::repo::RegionHasher hasher(kvb::repo::map_seed(key));
  for (size_t off = 0; off < n; off += kvb::repo::kRegionSize) {
    hasher.data(std::span(random).subspan(off, std::min<size_t>(kvb::repo::kRegionSize, n - off)));
    sink = sink ^ hasher.finish().content[0];
  }
  auto xxh = Clock::now() - t0;

  size_t stored_text = 0, stored_random = 0;
  t0 = Clock::now();
  for (size_t off = 0; off < n; off += 256 << 10) stored_text += kvb::repo::encode_blob(key, std::span(text).subspan(off, 256 << 10)).bytes.size();
  auto enc_text = Clock::now() - t0;
  t0 = Clock::now();
  for (size_t off = 0; off < n; off += 256 << 10) stored_random += kvb::repo::encode_blob(key, std::span(random).subspan(off, 256 << 10)).bytes.size();
  auto enc_random = Clock::now() - t0;

  std::printf("repo_bench: %zu MiB, one core\n", mib);
  std::printf("  FastCDC chunking (random data)          %8.0f MiB/s  %zu chunks, average %.0f KiB\n", mib_per_s(n, cdc), chunks,
              static_cast<double>(n) / chunks / 1024);
  std::printf("  HMAC-SHA-256 blob ids                   %8.0f MiB/s\n", mib_per_s(n, hmac));
  std::printf("  XXH3-128 region fingerprints (1 MiB)    %8.0f MiB/s\n", mib_per_s(n, xxh));
  std::printf("  encode blob, text-like (id+zstd+GCM)    %8.0f MiB/s  stored %.1f%%\n", mib_per_s(n, enc_text),
              100.0 * stored_text / n);
  std::printf("  encode blob, random (id+test+GCM)       %8.0f MiB/s  stored %.1f%%\n", mib_per_s(n, enc_random),
              100.0 * stored_random / n);
  std::printf("ratios\n  fixed-size cut / FastCDC time           %8.4f  (fixed blocks are free to cut; FastCDC costs %.1f%% of the random-data encode time)\n",
              std::chrono::duration<double>(fixed).count() / std::chrono::duration<double>(cdc).count(),
              100.0 * std::chrono::duration<double>(cdc).count() / std::chrono::duration<double>(enc_random).count());
  std::printf("  FastCDC + HMAC time / XXH3 time         %8.1f  (what an unchanged region costs a full put vs an incremental one)\n",
              (std::chrono::duration<double>(cdc).count() + std::chrono::duration<double>(hmac).count()) / std::chrono::duration<double>(xxh).count());

  // End to end: put and get of an image made of random, text and zero thirds, twice (the second put dedups).
  auto dir = std::filesystem::temp_directory_path() / ("kvb-repo-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    std::ofstream img(dir / "disk.img", std::ios::binary);
    img.write(reinterpret_cast<const char*>(random.data()), static_cast<std::streamsize>(n / 3));
    img.write(reinterpret_cast<const char*>(text.data()), static_cast<std::streamsize>(n / 3));
    std::vector<char> zeros(n - 2 * (n / 3), 0);
    img.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  // End to end: the same image through the pipeline with one worker and with one per core, side by side.
  kvb::Secret pw("bench");
  struct Run {
    Clock::duration put1{}, put2{}, get{};
    size_t new_chunks = 0;
  };
  auto run = [&](unsigned workers, const std::string& name) -> std::optional<Run> {
    (void)kvb::repo::Repository::init(dir / name, pw);
    auto repo = kvb::repo::Repository::open(dir / name, pw);
    if (!repo) return std::nullopt;
    kvb::repo::PutOptions po;
    po.workers = workers;
    kvb::repo::GetOptions go;
    go.workers = workers;
    Run r;
    auto t = Clock::now();
    auto first = (*repo)->put("disk", dir / "disk.img", po);
    r.put1 = Clock::now() - t;
    t = Clock::now();
    auto second = (*repo)->put("disk", dir / "disk.img", po);  // incremental: the image map says nothing changed
    r.put2 = Clock::now() - t;
    t = Clock::now();
    auto got = (*repo)->get("disk", dir / ("restored-" + name + ".img"), go);
    r.get = Clock::now() - t;
    if (!first || !second || !got) return std::nullopt;
    r.new_chunks = second->new_chunks;
    return r;
  };
  auto one = run(1, "repo-1");
  auto all = run(0, "repo-all");
  if (!one || !all) return 1;
  uintmax_t repo_size = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir / "repo-all")) {
    if (e.is_regular_file()) repo_size += e.file_size();
  }
  auto secs = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  std::printf("end to end, %zu MiB image (1/3 random, 1/3 text, 1/3 zeros), 1 worker vs one per core (%u):\n", mib,
              std::max(1u, std::thread::hardware_concurrency()));
  std::printf("  first put    %8.0f vs %8.0f MiB/s  %.2fx\n", mib_per_s(n, one->put1), mib_per_s(n, all->put1), secs(one->put1) / secs(all->put1));
  std::printf("  second put   %8.0f vs %8.0f MiB/s  %.2fx (%zu new chunks)\n", mib_per_s(n, one->put2), mib_per_s(n, all->put2),
              secs(one->put2) / secs(all->put2), all->new_chunks);
  std::printf("  get          %8.0f vs %8.0f MiB/s  %.2fx\n", mib_per_s(n, one->get), mib_per_s(n, all->get), secs(one->get) / secs(all->get));
  std::printf("  repository   %.1f%% of the image\n", 100.0 * static_cast<double>(repo_size) / n);
  std::filesystem::remove_all(dir);
  return 0;
}
