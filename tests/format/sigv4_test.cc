// SigV4 against AWS's published vectors: the Signature Version 4 test suite
// (get-vanilla, get-vanilla-query-order-key-case, post-vanilla; credentials
// AKIDEXAMPLE, service "service", 2015-08-30T12:36:00Z) and the Amazon S3 API
// Reference's worked examples ("Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk": GET Object
// with a range, PUT Object, GET Bucket Lifecycle, GET Bucket).
#include "format/internal/sigv4.h"

#include <gtest/gtest.h>

#include <chrono>

namespace shoal::internal {
namespace {

const AwsCredentials kSuite{"AKIDEXAMPLE",
                            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
const AwsCredentials kS3Docs{"AKIAIOSFODNN7EXAMPLE",
                             "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
const std::string kEmpty =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

TEST(SigV4Test, TestSuiteGetVanilla) {
  SigV4Request r{.method = "GET",
                 .host = "example.amazonaws.com",
                 .path = "/",
                 .payload_sha256 = kEmpty};
  const SigV4Signature s =
      SignV4(r, kSuite, "us-east-1", "service", "20150830T123600Z");
  EXPECT_EQ(s.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z"
            "\n\nhost;x-amz-date\n" +
                kEmpty);
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/"
            "aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
            "service/aws4_request, SignedHeaders=host;x-amz-date, "
            "Signature="
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SigV4Test, TestSuiteQueryOrderAndPost) {
  SigV4Request get{.method = "GET",
                   .host = "example.amazonaws.com",
                   .path = "/",
                   .query = {{"Param2", "value2"}, {"Param1", "value1"}},
                   .payload_sha256 = kEmpty};
  EXPECT_EQ(
      SignV4(get, kSuite, "us-east-1", "service", "20150830T123600Z").signature,
      "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  SigV4Request post{.method = "POST",
                    .host = "example.amazonaws.com",
                    .path = "/",
                    .payload_sha256 = kEmpty};
  EXPECT_EQ(SignV4(post, kSuite, "us-east-1", "service", "20150830T123600Z")
                .signature,
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

TEST(SigV4Test, S3GetObjectWithARange) {
  SigV4Request r{
      .method = "GET",
      .host = "examplebucket.s3.amazonaws.com",
      .path = "/test.txt",
      .headers = {{"Range", "bytes=0-9"}, {"x-amz-content-sha256", kEmpty}},
      .payload_sha256 = kEmpty};
  const SigV4Signature s =
      SignV4(r, kS3Docs, "us-east-1", "s3", "20130524T000000Z");
  EXPECT_EQ(Sha256Hex(AsBytes(s.canonical_request)),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972")
      << s.canonical_request;
  EXPECT_EQ(s.signature,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
            "us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature="
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4Test, S3PutObjectEncodesTheKeyAndHashesThePayload) {
  const std::string payload = Sha256Hex(AsBytes("Welcome to Amazon S3."));
  EXPECT_EQ(payload,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  SigV4Request r{.method = "PUT",
                 .host = "examplebucket.s3.amazonaws.com",
                 .path = "/test$file.text",
                 .headers = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                             {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                             {"x-amz-content-sha256", payload}},
                 .payload_sha256 = payload};
  const SigV4Signature s =
      SignV4(r, kS3Docs, "us-east-1", "s3", "20130524T000000Z");
  EXPECT_NE(s.canonical_request.find("\n/test%24file.text\n"),
            std::string::npos);
  EXPECT_EQ(s.signature,
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4Test, S3BucketRequestsWithQueries) {
  SigV4Request lifecycle{.method = "GET",
                         .host = "examplebucket.s3.amazonaws.com",
                         .path = "/",
                         .query = {{"lifecycle", ""}},
                         .headers = {{"x-amz-content-sha256", kEmpty}},
                         .payload_sha256 = kEmpty};
  EXPECT_EQ(SignV4(lifecycle, kS3Docs, "us-east-1", "s3", "20130524T000000Z")
                .signature,
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  SigV4Request list{.method = "GET",
                    .host = "examplebucket.s3.amazonaws.com",
                    .path = "/",
                    .query = {{"prefix", "J"}, {"max-keys", "2"}},
                    .headers = {{"x-amz-content-sha256", kEmpty}},
                    .payload_sha256 = kEmpty};
  EXPECT_EQ(
      SignV4(list, kS3Docs, "us-east-1", "s3", "20130524T000000Z").signature,
      "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4Test, SessionTokenIsSignedAndSent) {
  AwsCredentials temporary = kS3Docs;
  temporary.session_token = "token/with+chars=";
  SigV4Request r{.method = "GET",
                 .host = "examplebucket.s3.amazonaws.com",
                 .path = "/test.txt",
                 .headers = {{"x-amz-content-sha256", kEmpty}},
                 .payload_sha256 = kEmpty};
  const SigV4Signature with =
      SignV4(r, temporary, "us-east-1", "s3", "20130524T000000Z");
  const SigV4Signature without =
      SignV4(r, kS3Docs, "us-east-1", "s3", "20130524T000000Z");
  EXPECT_NE(with.signature, without.signature);
  EXPECT_NE(with.authorization.find(
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-"
                "security-token,"),
            std::string::npos);
  bool sent = false;
  for (const auto& [name, value] : with.headers) {
    sent |= name == "x-amz-security-token" && value == "token/with+chars=";
  }
  EXPECT_TRUE(sent);
}

TEST(SigV4Test, EncodingAndDates) {
  EXPECT_EQ(UriEncode("a b/c~d_e.f-g+h=é", false),
            "a%20b/c~d_e.f-g%2Bh%3D%C3%A9");
  EXPECT_EQ(UriEncode("a/b", true), "a%2Fb");
  EXPECT_EQ(AmzDate(std::chrono::system_clock::time_point(
                std::chrono::seconds(1440938160))),
            "20150830T123600Z");
  EXPECT_EQ(AmzDate(std::chrono::system_clock::time_point()),
            "19700101T000000Z");
}

// Against Python's hashlib: md5(b"hello"), md5(b"world"), and S3's
// multipart form, the MD5 of the two binary MD5s with "-2".
TEST(SigV4Test, EtagsOfWholeAndMultipartObjects) {
  const std::string hello = "\"5d41402abc4b2a76b9719d911017c592\"";
  const std::string world = "7d793037a0760186574b0282f2f435e7";
  EXPECT_TRUE(EtagMatches(hello, AsBytes("hello"), {}));
  EXPECT_FALSE(EtagMatches(hello, AsBytes("hellO"), {}));
  const std::vector<std::string> parts = {hello, world};
  EXPECT_TRUE(EtagMatches("\"065947336a2f2a95ba8899f3675c3be6-2\"",
                          AsBytes("helloworld"), parts));
  EXPECT_FALSE(EtagMatches("065947336a2f2a95ba8899f3675c3be6-3",
                           AsBytes("helloworld"), parts));
  const std::vector<std::string> odd = {hello, "zz" + world.substr(2)};
  EXPECT_FALSE(EtagMatches("065947336a2f2a95ba8899f3675c3be6-2",
                           AsBytes("helloworld"), odd));
}

}  // namespace
}  // namespace shoal::internal
