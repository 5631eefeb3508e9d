// The s3:// store against a real S3-compatible server: s3rver (npm, installed
// by scripts/install-deps.sh under /opt/shoal-s3rver), started here on
// 127.0.0.1 on a free port and stopped at the end. s3rver checks SigV4
// signatures, so every request also tests the signer. Each test gets a
// fresh prefix of one bucket: a fresh, empty store.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "format/store.h"
#include "tests/format/store_conformance.h"

extern char** environ;

namespace shoal {
namespace {

namespace fs = std::filesystem;

const char* S3rverPath() {
  const char* path = std::getenv("SHOAL_S3RVER");
  return path ? path : "/opt/shoal-s3rver/node_modules/.bin/s3rver";
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

bool Accepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok =
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// One s3rver for the whole binary, behind tests/format/s3_proxy.js, which
// starts it, checks every request's SigV4 signature and supplies
// conditional puts. The proxy reads a pipe from this process and stops
// everything when it closes, so a crashed test leaves no server behind.
class S3Server : public ::testing::Environment {
 public:
  static inline std::string endpoint;

  void SetUp() override {
    ASSERT_TRUE(fs::exists(S3rverPath()))
        << S3rverPath()
        << " is missing: scripts/install-deps.sh installs s3rver with npm";
    dir_ = fs::temp_directory_path() /
           ("shoal-s3rver-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    const int port = FreePort();
    const std::string port_text = std::to_string(port);
    const std::string dir_text = dir_.string();
    const std::string proxy =
        std::string(SHOAL_TEST_SOURCE_DIR) + "/s3_proxy.js";
    const char* argv[] = {"node",       proxy.c_str(),    port_text.c_str(),
                          S3rverPath(), dir_text.c_str(), "shoal-test",
                          "S3RVER",     "S3RVER",         nullptr};
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    const int spawned = posix_spawnp(&pid_, "node", &actions, nullptr,
                                     const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[0]);
    write_end_ = fds[1];
    ASSERT_EQ(spawned, 0) << "cannot start node (Debian package nodejs)";
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!Accepts(port)) {
      int status = 0;
      ASSERT_EQ(waitpid(pid_, &status, WNOHANG), 0)
          << "the s3rver proxy exited: " << proxy;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "s3rver did not listen on 127.0.0.1:" << port << " in 30 s";
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    endpoint = "http://127.0.0.1:" + port_text;
    // s3rver's built-in account.
    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    unsetenv("AWS_SESSION_TOKEN");
  }

  void TearDown() override {
    if (write_end_ >= 0) close(write_end_);  // the proxy stops s3rver, exits
    if (pid_ > 0) {
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

 private:
  pid_t pid_ = 0;
  int write_end_ = -1;
  fs::path dir_;
};

const ::testing::Environment* const kServer =
    ::testing::AddGlobalTestEnvironment(new S3Server);

std::string FreshUrl() {
  static std::atomic<int> n{0};
  return "s3://shoal-test/t" + std::to_string(getpid()) + "-" +
         std::to_string(n++) + "?endpoint=" + S3Server::endpoint;
}

StoreConformanceParam S3Param() {
  return {"S3", []() -> Result<StoreUnderTest> {
            SHOAL_ASSIGN_OR_RETURN(auto store, OpenStore(FreshUrl()));
            return StoreUnderTest{std::move(store), nullptr};
          }};
}

INSTANTIATE_TEST_SUITE_P(S3, StoreConformanceTest, ::testing::Values(S3Param()),
                         StoreConformanceParamName);

TEST(S3StoreTest, ErrorsNameBucketKeyAndStatus) {
  auto store = OpenStore(FreshUrl());
  ASSERT_TRUE(store.ok()) << store.status();
  auto missing = (*store)->Read("no/such");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("s3://shoal-test/"),
            std::string_view::npos)
      << missing.status();
  EXPECT_NE(missing.status().message().find("no/such: HTTP 404"),
            std::string_view::npos)
      << missing.status();
  // Wrong credentials: the server refuses the signature, and that is not
  // retried.
  setenv("AWS_SECRET_ACCESS_KEY", "wrong", 1);
  auto refused = OpenStore(FreshUrl());
  setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
  ASSERT_TRUE(refused.ok());
  const auto start = std::chrono::steady_clock::now();
  Status s = (*refused)->Write("a", AsBytes("x"));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("HTTP 403"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find("SignatureDoesNotMatch"), std::string_view::npos)
      << s;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(S3StoreTest, UrlOptionsAreChecked) {
  auto bad = OpenStore("s3://shoal-test/x?endpont=http://127.0.0.1:1");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown option 'endpont'"),
            std::string_view::npos);
  EXPECT_FALSE(OpenStore("s3:///x").ok());
}

}  // namespace
}  // namespace shoal
