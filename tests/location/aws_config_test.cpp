// The AWS configuration conventions for S3 locations: URLs, environment
// variables, ~/.aws/credentials and ~/.aws/config, and what overrides what.
#include "location/location.h"
#include "location/s3/aws_config.h"
#include "tests/support/test_api_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

namespace kvb::location::s3 {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;
using testing::TempDir;

Getenv env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(S3Url, FormsAndMistakes) {
  auto u = parse_s3_url("s3://my-bucket/backups/prod/?region=eu-west-1&endpoint=http://127.0.0.1:7480");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->bucket, "my-bucket");
  EXPECT_EQ(u->prefix, "backups/prod");
  EXPECT_EQ(u->options.at("region"), "eu-west-1");
  EXPECT_EQ(u->display(), "s3://my-bucket/backups/prod");
  auto root = parse_s3_url("s3://bkt");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->prefix, "");
  for (const char* bad : {"s3://", "s3://Upper/x", "s3://ab/x", "s3://bkt//x", "s3://bkt/a/../b", "s3://bkt/x?colour=red"}) {
    EXPECT_FALSE(parse_s3_url(bad)) << bad;
  }
  auto creds = parse_s3_url("s3://AKIAXXXX:verysecret@bkt/x");
  ASSERT_FALSE(creds);
  EXPECT_THAT(creds.error().message, Not(HasSubstr("verysecret")));
}

TEST(S3Url, UnknownSchemesAreErrorsNeverDirectories) {
  TempDir dir;
  auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  for (const char* url : {"gs://bucket/x", "azure://container/x", "s3:/typo/x", "S3://bkt/x", "file:relative", "https://host/x", "s3:bkt"}) {
    auto l = location::open(url, location::OpenMode::kCreate);
    EXPECT_FALSE(l) << url;
    if (!l) {
      EXPECT_EQ(l.error().code, Errc::kInvalidArgument) << url;
      EXPECT_THAT(l.error().message, HasSubstr(url)) << url;
    }
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "no directory was created for a URL";
  EXPECT_TRUE(location::open("./dir:with-colon", location::OpenMode::kCreate)) << "a path that starts with ./ is a directory";
  std::filesystem::current_path(cwd);
}

TEST(AwsConfig, EnvironmentVariables) {
  auto u = *parse_s3_url("s3://bkt/p");
  auto s = resolve_settings(u, env_of({{"AWS_ACCESS_KEY_ID", "AKID"},
                                       {"AWS_SECRET_ACCESS_KEY", "SECRET"},
                                       {"AWS_SESSION_TOKEN", "TOKEN"},
                                       {"AWS_DEFAULT_REGION", "eu-north-1"},
                                       {"HOME", "/nonexistent"}}));
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->credentials.access_key_id, "AKID");
  EXPECT_EQ(s->credentials.secret_access_key.reveal(), "SECRET");
  EXPECT_EQ(s->credentials.session_token.reveal(), "TOKEN");
  EXPECT_EQ(s->region, "eu-north-1");
  EXPECT_TRUE(s->aws);
  EXPECT_FALSE(s->path_style) << "AWS itself: virtual-hosted style";
  EXPECT_EQ(s->endpoint, "https://bkt.s3.eu-north-1.amazonaws.com");

  auto r = resolve_settings(u, env_of({{"AWS_ACCESS_KEY_ID", "A"}, {"AWS_SECRET_ACCESS_KEY", "S"}, {"AWS_REGION", "ap-south-1"},
                                       {"AWS_DEFAULT_REGION", "eu-north-1"}, {"AWS_ENDPOINT_URL", "http://127.0.0.1:9000"},
                                       {"AWS_ENDPOINT_URL_S3", "http://127.0.0.1:7480"}, {"HOME", "/nonexistent"}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->region, "ap-south-1") << "AWS_REGION wins over AWS_DEFAULT_REGION";
  EXPECT_EQ(r->endpoint, "http://127.0.0.1:7480") << "AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL";
  EXPECT_TRUE(r->path_style) << "a custom endpoint: path style";
  EXPECT_FALSE(r->tls);

  auto half = resolve_settings(u, env_of({{"AWS_ACCESS_KEY_ID", "A"}, {"HOME", "/nonexistent"}}));
  ASSERT_FALSE(half);
  EXPECT_THAT(half.error().message, HasSubstr("AWS_SECRET_ACCESS_KEY is not"));
  auto none = resolve_settings(u, env_of({{"HOME", "/nonexistent"}}));
  ASSERT_FALSE(none);
  EXPECT_THAT(none.error().message, HasSubstr("no AWS credentials"));
}

TEST(AwsConfig, ProfilesAndWhatOverridesWhat) {
  TempDir dir;
  dir.write("credentials",
            "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = defaultsecret\n\n"
            "[prod]\naws_access_key_id=PRODKEY\naws_secret_access_key=prodsecret\naws_session_token = prodtoken\n");
  dir.write("config",
            "# comment\n[default]\nregion = us-west-1\n\n[profile prod]\nregion = eu-west-3\nendpoint_url = http://10.0.0.1:7480\n"
            "s3 =\n  addressing_style = path\n  endpoint_url = http://10.0.0.2:7480\nca_bundle = " + (dir / "config").string() + "\n");
  std::map<std::string, std::string> base{{"AWS_SHARED_CREDENTIALS_FILE", (dir / "credentials").string()},
                                          {"AWS_CONFIG_FILE", (dir / "config").string()}};
  auto u = *parse_s3_url("s3://bkt/p");
  auto d = resolve_settings(u, env_of(base));
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->credentials.access_key_id, "DEFAULTKEY");
  EXPECT_EQ(d->region, "us-west-1");
  EXPECT_THAT(d->credentials_origin, HasSubstr("profile default"));

  auto with_profile = base;
  with_profile["AWS_PROFILE"] = "prod";
  auto p = resolve_settings(u, env_of(with_profile));
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->credentials.access_key_id, "PRODKEY");
  EXPECT_EQ(p->credentials.session_token.reveal(), "prodtoken");
  EXPECT_EQ(p->region, "eu-west-3");
  EXPECT_EQ(p->endpoint, "http://10.0.0.2:7480") << "the s3 block's endpoint_url wins over the profile's";
  EXPECT_TRUE(p->path_style);
  EXPECT_EQ(p->ca_bundle, (dir / "config").string());

  // Environment credentials win over AWS_PROFILE's; an explicit ?profile= wins over them.
  auto env_keys = with_profile;
  env_keys["AWS_ACCESS_KEY_ID"] = "ENVKEY";
  env_keys["AWS_SECRET_ACCESS_KEY"] = "envsecret";
  env_keys["AWS_REGION"] = "sa-east-1";
  auto e = resolve_settings(u, env_of(env_keys));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->credentials.access_key_id, "ENVKEY");
  EXPECT_EQ(e->region, "sa-east-1");
  auto flagged = resolve_settings(*parse_s3_url("s3://bkt/p?profile=prod&region=us-east-2&endpoint=https://minio.example:9000&addressing=virtual"),
                                  env_of(env_keys));
  ASSERT_TRUE(flagged) << flagged.error().message;
  EXPECT_EQ(flagged->credentials.access_key_id, "PRODKEY");
  EXPECT_EQ(flagged->region, "us-east-2");
  EXPECT_EQ(flagged->endpoint, "https://bkt.minio.example:9000");

  auto missing = base;
  missing["AWS_PROFILE"] = "nope";
  auto m = resolve_settings(u, env_of(missing));
  ASSERT_FALSE(m);
  EXPECT_THAT(m.error().message, HasSubstr("profile \"nope\""));
}

TEST(AwsConfig, MalformedFilesAndSettingsAreErrorsNamingThem) {
  TempDir dir;
  dir.write("credentials", "aws_access_key_id = before-any-section\n");
  auto u = *parse_s3_url("s3://bkt/p");
  auto bad = resolve_settings(u, env_of({{"AWS_SHARED_CREDENTIALS_FILE", (dir / "credentials").string()}, {"HOME", "/nonexistent"}}));
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr((dir / "credentials").string() + ": line 1"));
  auto zero = resolve_settings(u, env_of({{"AWS_CONFIG_FILE", "/dev/zero"}, {"HOME", "/nonexistent"}}));
  ASSERT_FALSE(zero);
  EXPECT_THAT(zero.error().message, HasSubstr("larger than"));
  auto region = resolve_settings(u, env_of({{"AWS_ACCESS_KEY_ID", "A"}, {"AWS_SECRET_ACCESS_KEY", "S"}, {"AWS_REGION", "EU WEST"},
                                            {"HOME", "/nonexistent"}}));
  ASSERT_FALSE(region);
  EXPECT_THAT(region.error().message, HasSubstr("AWS_REGION"));
  auto endpoint = resolve_settings(u, env_of({{"AWS_ACCESS_KEY_ID", "A"}, {"AWS_SECRET_ACCESS_KEY", "S"}, {"AWS_ENDPOINT_URL", "ftp://x"},
                                              {"HOME", "/nonexistent"}}));
  ASSERT_FALSE(endpoint);
  EXPECT_THAT(endpoint.error().message, HasSubstr("AWS_ENDPOINT_URL"));
  auto ca = resolve_settings(u, env_of({{"AWS_ACCESS_KEY_ID", "A"}, {"AWS_SECRET_ACCESS_KEY", "S"}, {"AWS_CA_BUNDLE", "/nonexistent.pem"},
                                        {"HOME", "/nonexistent"}}));
  ASSERT_FALSE(ca);
  EXPECT_THAT(ca.error().message, HasSubstr("/nonexistent.pem"));
}

}  // namespace
}  // namespace kvb::location::s3
