#include "testcluster/net/certs.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace kvb::testcluster {
namespace {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

Error ssl_error(const std::string& what) { return Error(Errc::kTls, "test PKI: " + what); }

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return bio_string(bio.get());
}

std::string cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return bio_string(bio.get());
}

bool add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return false;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return true;
}

Result<CertPtr> build(EVP_PKEY* subject_key, EVP_PKEY* signing_key, X509* issuer, const CertSpec& spec, bool ca) {
  CertPtr cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  long validity = static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(spec.validity).count());
  if (spec.expired) {
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -2 * validity);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), -validity);
  } else {
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), validity);
  }
  X509_set_pubkey(cert.get(), subject_key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (!spec.organization.empty()) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(spec.organization.c_str()), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509* iss = issuer ? issuer : cert.get();
  bool okay = true;
  if (ca) {
    okay &= add_ext(cert.get(), iss, NID_basic_constraints, "critical,CA:TRUE");
    okay &= add_ext(cert.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
  } else {
    okay &= add_ext(cert.get(), iss, NID_basic_constraints, "critical,CA:FALSE");
    okay &= add_ext(cert.get(), iss, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    okay &= add_ext(cert.get(), iss, NID_ext_key_usage, spec.client ? "clientAuth" : "serverAuth");
    std::string san;
    for (const auto& d : spec.dns_names) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
    for (const auto& ip : spec.ip_addresses) san += (san.empty() ? "" : ",") + std::string("IP:") + ip;
    if (!san.empty()) okay &= add_ext(cert.get(), iss, NID_subject_alt_name, san);
  }
  okay &= add_ext(cert.get(), iss, NID_subject_key_identifier, "hash");
  if (!okay) return ssl_error("cannot add certificate extensions");
  if (X509_sign(cert.get(), signing_key, EVP_sha256()) == 0) return ssl_error("cannot sign certificate");
  return cert;
}

}  // namespace

Result<KeyPair> make_ca(const std::string& cn) {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return ssl_error("cannot generate key");
  CertSpec spec;
  spec.common_name = cn;
  spec.validity = std::chrono::hours(24 * 3650);
  auto cert = build(key.get(), key.get(), nullptr, spec, true);
  if (!cert) return cert.error();
  return KeyPair{cert_pem(cert->get()), key_pem(key.get())};
}

Result<KeyPair> issue_certificate(const KeyPair& ca, const CertSpec& spec) {
  BioPtr cbio(BIO_new_mem_buf(ca.cert_pem.data(), static_cast<int>(ca.cert_pem.size())));
  CertPtr ca_cert(PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr));
  BioPtr kbio(BIO_new_mem_buf(ca.key_pem.data(), static_cast<int>(ca.key_pem.size())));
  KeyPtr ca_key(PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr));
  if (!ca_cert || !ca_key) return ssl_error("CA certificate or key is not valid PEM");
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return ssl_error("cannot generate key");
  auto cert = build(key.get(), ca_key.get(), ca_cert.get(), spec, false);
  if (!cert) return cert.error();
  return KeyPair{cert_pem(cert->get()), key_pem(key.get())};
}

std::string certificate_common_name(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  CertPtr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return {};
  char buf[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, buf, sizeof buf);
  return buf;
}

}  // namespace kvb::testcluster
