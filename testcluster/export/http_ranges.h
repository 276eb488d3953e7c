// HTTP Range handling of the test cluster's export server, as Go's
// http.ServeContent (which KubeVirt's exporter uses for disk.img) does it:
//   - "bytes=a-b", "bytes=a-", "bytes=-n", comma separated; a malformed spec
//     or one where no range overlaps the content is 416 (Content-Range
//     "bytes */size"); ranges starting past the end are dropped; ends clamp;
//   - ranges whose lengths add up to more than the content are ignored (200);
//   - If-Range: an entity tag never matches (no ETag is sent); an HTTP date
//     matches when it equals Last-Modified to the second; no match means 200;
//   - one range -> 206 with Content-Range; several -> multipart/byteranges.
// Pure functions: any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvb::testcluster {

struct ByteRange {
  uint64_t start = 0;
  uint64_t length = 0;
  std::string content_range(uint64_t size) const;  // "bytes a-b/size"
};

struct RangePlan {
  int status = 200;                 // 200, 206 or 416
  std::vector<ByteRange> ranges;    // empty: the whole content (200) or none (416)
};

// `range` and `if_range` are the request's header values ("" when absent);
// `modified_unix` is the content's Last-Modified in seconds since the epoch.
RangePlan plan_ranges(const std::string& range, const std::string& if_range, uint64_t size, int64_t modified_unix);

// An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and its parser.
std::string http_date(int64_t unix_seconds);
std::optional<int64_t> parse_http_date(const std::string& s);

// The multipart/byteranges framing of `ranges`: the header of each part
// (before its bytes) and the closing delimiter; total() is the body length.
struct Multipart {
  std::string boundary;
  std::vector<std::string> part_headers;
  std::string closing;
  uint64_t total(const std::vector<ByteRange>& ranges) const;
};
Multipart multipart_framing(const std::vector<ByteRange>& ranges, uint64_t size, const std::string& content_type,
                            const std::string& boundary);

}  // namespace kvb::testcluster
