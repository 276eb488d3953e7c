#include "location/s3/aws_config.h"

#include "common/bounded_read.h"

#include <boost/url/parse.hpp>

#include <cctype>
#include <cstdlib>
#include <filesystem>

namespace kvb::location::s3 {
namespace fs = std::filesystem;

namespace {

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

const std::set<std::string>& known_options() {
  static const std::set<std::string> k{"region", "endpoint", "profile", "addressing", "ca_bundle"};
  return k;
}

// S3 bucket naming rules (the subset that matters for URLs and hosts).
bool valid_bucket(const std::string& b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_')) return false;
  }
  return std::isalnum(static_cast<unsigned char>(b.front())) && std::isalnum(static_cast<unsigned char>(b.back()));
}

// A virtual-hosted bucket must be a single DNS label set without dots (TLS wildcard certificates).
bool dns_compatible(const std::string& b) { return b.find('.') == std::string::npos && b.find('_') == std::string::npos; }

}  // namespace

std::string S3Url::display() const { return "s3://" + bucket + (prefix.empty() ? "" : "/" + prefix); }

Result<S3Url> parse_s3_url(std::string_view url) {
  const std::string shown(url.substr(0, url.find('?')));
  auto bad = [&](const std::string& why) { return Error(Errc::kInvalidArgument, "location \"" + shown + "\": " + why); };
  if (url.substr(0, 5) != "s3://") return bad("an S3 location is s3://BUCKET/PREFIX");
  std::string_view rest = url.substr(5);
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  S3Url out;
  auto slash = rest.find('/');
  out.bucket = std::string(rest.substr(0, slash));
  if (out.bucket.find('@') != std::string::npos || out.bucket.find(':') != std::string::npos) {
    // s3://KEY:SECRET@bucket: never echo it back.
    return Error(Errc::kInvalidArgument, "an S3 location must not hold credentials (s3://KEY:SECRET@...); use AWS_ACCESS_KEY_ID and "
                                         "AWS_SECRET_ACCESS_KEY or a profile");
  }
  if (!valid_bucket(out.bucket)) return bad("\"" + out.bucket + "\" is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-')");
  std::string prefix = slash == std::string_view::npos ? "" : std::string(rest.substr(slash + 1));
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (prefix.find("//") != std::string::npos || (!prefix.empty() && prefix.front() == '/')) return bad("the prefix has an empty path segment");
  for (const auto& seg : {std::string("."), std::string("..")}) {
    if (prefix == seg || prefix.rfind(seg + "/", 0) == 0 || prefix.find("/" + seg + "/") != std::string::npos ||
        (prefix.size() > seg.size() && prefix.compare(prefix.size() - seg.size() - 1, std::string::npos, "/" + seg) == 0)) {
      return bad("the prefix must not contain . or .. segments");
    }
  }
  out.prefix = prefix;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    auto eq = kv.find('=');
    std::string k(kv.substr(0, eq));
    std::string v = eq == std::string_view::npos ? "" : std::string(kv.substr(eq + 1));
    if (!known_options().count(k)) {
      return bad("unknown option \"" + k + "\" (known: region, endpoint, profile, addressing, ca_bundle)");
    }
    out.options[k] = v;
  }
  return out;
}

Getenv process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v || !*v) return std::nullopt;
    return std::string(v);
  };
}

Result<IniFile> parse_aws_ini(const std::string& text, const std::string& origin) {
  IniFile out;
  std::string section;
  std::string block;  // "s3" while inside "s3 =" followed by indented lines
  size_t line_no = 0, pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.pop_back();
    std::string line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') {
      if (pos > text.size()) break;
      continue;
    }
    auto where = origin + ": line " + std::to_string(line_no);
    if (line.front() == '[') {
      if (line.back() != ']') return Error(Errc::kConfig, where + ": a section header must end with ]");
      section = trim(line.substr(1, line.size() - 2));
      block.clear();
      out[section];
      continue;
    }
    if (section.empty()) return Error(Errc::kConfig, where + ": a setting before any [section]");
    auto eq = line.find('=');
    if (eq == std::string::npos) return Error(Errc::kConfig, where + ": expected NAME = VALUE");
    std::string key = trim(line.substr(0, eq));
    std::string value = trim(line.substr(eq + 1));
    bool indented = !raw.empty() && (raw[0] == ' ' || raw[0] == '\t');
    if (indented && !block.empty()) {
      out[section][block + "." + key] = value;
      continue;
    }
    block = value.empty() ? key : "";
    out[section][key] = value;
    if (pos > text.size()) break;
  }
  return out;
}

namespace {

struct Profiles {
  IniFile credentials, config;
  std::string credentials_file, config_file;
};

Result<Profiles> load_profiles(const Getenv& env) {
  Profiles p;
  std::string home = env("HOME").value_or("");
  p.credentials_file = env("AWS_SHARED_CREDENTIALS_FILE").value_or(home.empty() ? "" : home + "/.aws/credentials");
  p.config_file = env("AWS_CONFIG_FILE").value_or(home.empty() ? "" : home + "/.aws/config");
  auto load = [](const std::string& file, const char* what, IniFile& into) -> Status {
    if (file.empty()) return ok();
    auto text = read_file_bounded(file, what);
    if (!text) {
      if (text.error().code == Errc::kNotFound) return ok();  // as in the AWS CLI: a missing file is no settings
      return Error(Errc::kConfig, text.error().message);
    }
    KVB_TRY(into, parse_aws_ini(*text, file));
    return ok();
  };
  KVB_CHECK(load(p.credentials_file, "AWS credentials file", p.credentials));
  KVB_CHECK(load(p.config_file, "AWS config file", p.config));
  return p;
}

// A profile's setting: ~/.aws/credentials [NAME] first (for keys), then ~/.aws/config [profile NAME] ([default] for default).
std::optional<std::pair<std::string, std::string>> profile_value(const Profiles& p, const std::string& profile, const std::string& key,
                                                                 bool credentials_first) {
  auto look = [&](const IniFile& f, const std::string& section, const std::string& file) -> std::optional<std::pair<std::string, std::string>> {
    auto s = f.find(section);
    if (s == f.end()) return std::nullopt;
    auto v = s->second.find(key);
    if (v == s->second.end() || v->second.empty()) return std::nullopt;
    return std::make_pair(v->second, "profile " + profile + " in " + file);
  };
  std::string config_section = profile == "default" ? "default" : "profile " + profile;
  if (credentials_first) {
    if (auto v = look(p.credentials, profile, p.credentials_file)) return v;
    return look(p.config, config_section, p.config_file);
  }
  if (auto v = look(p.config, config_section, p.config_file)) return v;
  return look(p.credentials, profile, p.credentials_file);
}

bool profile_exists(const Profiles& p, const std::string& profile) {
  return p.credentials.count(profile) || p.config.count(profile == "default" ? "default" : "profile " + profile);
}

}  // namespace

Result<Settings> resolve_settings(const S3Url& url, const Getenv& env) {
  Settings s;
  s.bucket = url.bucket;
  s.prefix = url.prefix;
  s.display = url.display();
  auto opt = [&](const char* k) -> std::optional<std::string> {
    auto it = url.options.find(k);
    if (it == url.options.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
  KVB_TRY(auto profiles, load_profiles(env));
  std::string profile = "default";
  bool explicit_profile = false;
  if (auto p = opt("profile")) {
    profile = *p;
    explicit_profile = true;
  } else if (auto e = env("AWS_PROFILE")) {
    profile = *e;
  }
  if (profile != "default" && !profile_exists(profiles, profile)) {
    return Error(Errc::kConfig, s.display + ": AWS profile \"" + profile + "\" is in neither " + profiles.credentials_file + " nor " +
                                    profiles.config_file);
  }

  // Credentials.
  auto env_key = env("AWS_ACCESS_KEY_ID"), env_secret = env("AWS_SECRET_ACCESS_KEY");
  if (!explicit_profile && env_key && env_secret) {
    s.credentials.access_key_id = *env_key;
    s.credentials.secret_access_key = Secret(*env_secret);
    if (auto t = env("AWS_SESSION_TOKEN")) s.credentials.session_token = Secret(*t);
    s.credentials_origin = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
  } else if (!explicit_profile && (env_key || env_secret)) {
    return Error(Errc::kConfig, s.display + ": " + (env_key ? "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
                                                              : "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"));
  } else {
    auto key = profile_value(profiles, profile, "aws_access_key_id", true);
    auto secret = profile_value(profiles, profile, "aws_secret_access_key", true);
    if (!key || !secret) {
      return Error(Errc::kConfig, s.display + ": no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile \"" +
                                      profile + "\" aws_access_key_id and aws_secret_access_key in " + profiles.credentials_file);
    }
    s.credentials.access_key_id = key->first;
    s.credentials.secret_access_key = Secret(secret->first);
    if (auto t = profile_value(profiles, profile, "aws_session_token", true)) s.credentials.session_token = Secret(t->first);
    s.credentials_origin = key->second;
  }

  // Region.
  if (auto r = opt("region")) {
    s.region = *r, s.region_origin = "?region= in the location";
  } else if (auto e = env("AWS_REGION")) {
    s.region = *e, s.region_origin = "AWS_REGION";
  } else if (auto d = env("AWS_DEFAULT_REGION")) {
    s.region = *d, s.region_origin = "AWS_DEFAULT_REGION";
  } else if (auto pr = profile_value(profiles, profile, "region", false)) {
    s.region = pr->first, s.region_origin = pr->second;
  } else {
    s.region = "us-east-1", s.region_origin = "the default";
  }
  for (char c : s.region) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return Error(Errc::kConfig, s.display + ": region \"" + s.region + "\" (from " + s.region_origin + ") is not a region name");
    }
  }

  // Endpoint and addressing style.
  std::string endpoint, endpoint_origin;
  if (auto e = opt("endpoint")) {
    endpoint = *e, endpoint_origin = "?endpoint= in the location";
  } else if (auto es3 = env("AWS_ENDPOINT_URL_S3")) {
    endpoint = *es3, endpoint_origin = "AWS_ENDPOINT_URL_S3";
  } else if (auto eall = env("AWS_ENDPOINT_URL")) {
    endpoint = *eall, endpoint_origin = "AWS_ENDPOINT_URL";
  } else if (auto ps3 = profile_value(profiles, profile, "s3.endpoint_url", false)) {
    endpoint = ps3->first, endpoint_origin = ps3->second;
  } else if (auto pe = profile_value(profiles, profile, "endpoint_url", false)) {
    endpoint = pe->first, endpoint_origin = pe->second;
  }
  std::string addressing;
  if (auto a = opt("addressing")) addressing = *a;
  else if (auto pa = profile_value(profiles, profile, "s3.addressing_style", false)) addressing = pa->first;
  if (!addressing.empty() && addressing != "path" && addressing != "virtual" && addressing != "auto") {
    return Error(Errc::kConfig, s.display + ": addressing style \"" + addressing + "\" is not path, virtual or auto");
  }
  if (endpoint.empty()) {
    s.aws = true;
    s.tls = true;
    s.path_style = addressing == "path" || !dns_compatible(s.bucket);
    s.endpoint = s.path_style ? "https://s3." + s.region + ".amazonaws.com" : "https://" + s.bucket + ".s3." + s.region + ".amazonaws.com";
  } else {
    auto u = boost::urls::parse_uri(endpoint);
    if (!u || (u->scheme() != "http" && u->scheme() != "https") || u->encoded_host().empty() ||
        (!u->encoded_path().empty() && u->encoded_path() != "/")) {
      return Error(Errc::kConfig, s.display + ": endpoint \"" + endpoint + "\" (from " + endpoint_origin +
                                      ") is not http(s)://HOST[:PORT]");
    }
    s.tls = u->scheme() == "https";
    s.path_style = addressing != "virtual";
    std::string host(u->encoded_host());
    std::string port = u->has_port() ? ":" + std::string(u->port()) : "";
    s.endpoint = std::string(u->scheme()) + "://" + (s.path_style ? "" : s.bucket + ".") + host + port;
  }

  // CA bundle.
  if (auto c = opt("ca_bundle")) s.ca_bundle = *c;
  else if (auto e = env("AWS_CA_BUNDLE")) s.ca_bundle = *e;
  else if (auto pc = profile_value(profiles, profile, "ca_bundle", false)) s.ca_bundle = pc->first;
  if (!s.ca_bundle.empty() && !fs::exists(s.ca_bundle)) {
    return Error(Errc::kConfig, s.display + ": CA bundle " + s.ca_bundle + " does not exist");
  }
  return s;
}

}  // namespace kvb::location::s3
