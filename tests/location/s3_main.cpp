// main() of location_s3_test: the S3 servers start once for the whole binary.
#include "tests/support/s3_servers.h"

#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  kvb::testing::register_s3_servers(/*with_s3rver=*/true, /*with_proxy=*/true);
  return RUN_ALL_TESTS();
}
