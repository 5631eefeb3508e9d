// The s3:// store against a real S3-compatible server: s3rver (npm, installed
// by scripts/install-deps.sh under /opt/shoal-s3rver), started here on
// 127.0.0.1 on a free port and stopped at the end, behind the test proxy
// (tests/format/s3_proxy.js), which checks SigV4 signatures, so every
// request also tests the signer. Each test gets a
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
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "format/dataset.h"
#include "format/internal/http_client.h"
#include "format/store.h"
#include "loader/copy.h"
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
  /// The same server behind injected faults: 10 % 503 SlowDown, 5 % reset
  /// connections, 2 ms added per request.
  static inline std::string fault_endpoint;

  void SetUp() override {
    ASSERT_TRUE(fs::exists(S3rverPath()))
        << S3rverPath()
        << " is missing: scripts/install-deps.sh installs s3rver with npm";
    dir_ = fs::temp_directory_path() /
           ("shoal-s3rver-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    const int port = FreePort();
    const std::string port_text = std::to_string(port);
    const std::string fault_port = std::to_string(FreePort());
    const std::string dir_text = dir_.string();
    const std::string proxy =
        std::string(SHOAL_TEST_SOURCE_DIR) + "/s3_proxy.js";
    const char* argv[] = {"node",
                          proxy.c_str(),
                          port_text.c_str(),
                          S3rverPath(),
                          dir_text.c_str(),
                          "shoal-test",
                          "S3RVER",
                          "S3RVER",
                          fault_port.c_str(),
                          "503=0.1,reset=0.05,latency=2",
                          nullptr};
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
    fault_endpoint = "http://127.0.0.1:" + fault_port;
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

std::string FreshUrl(const std::string& endpoint = S3Server::endpoint) {
  static std::atomic<int> n{0};
  return "s3://shoal-test/t" + std::to_string(getpid()) + "-" +
         std::to_string(n++) + "?endpoint=" + endpoint;
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

// What the proxy counted so far: {"slowdown": N, "reset": M, "parts": P}.
struct ProxyCounts {
  int slowdown = 0;
  int reset = 0;
  int parts = 0;
  int lost = 0;
  int lost_completions = 0;
};
ProxyCounts Counts() {
  internal::HttpClient http;
  auto r = http.Send({.url = S3Server::fault_endpoint + "/__shoal_faults"});
  EXPECT_TRUE(r.ok()) << r.status();
  ProxyCounts c;
  if (!r.ok()) return c;
  std::sscanf(std::string(r->body.view()).c_str(),
              "{\"slowdown\":%d,\"reset\":%d,\"parts\":%d}", &c.slowdown,
              &c.reset, &c.parts);
  const std::string body(r->body.view());
  if (const size_t at = body.find("\"lost\":"); at != std::string::npos) {
    c.lost = std::atoi(body.c_str() + at + 7);
  }
  if (const size_t at = body.find("\"lost_completions\":");
      at != std::string::npos) {
    c.lost_completions = std::atoi(body.c_str() + at + 19);
  }
  return c;
}
std::pair<int, int> InjectedFaults() {
  const ProxyCounts c = Counts();
  return {c.slowdown, c.reset};
}

// Through 10 % 503s and 5 % reset connections every write and read
// finishes, with every byte right: the retries are real, and counted.
TEST(S3StoreTest, ReadsAndWritesGetThroughInjectedFaults) {
  auto store = OpenStore(FreshUrl(S3Server::fault_endpoint));
  ASSERT_TRUE(store.ok()) << store.status();
  const auto [slowdown_before, reset_before] = InjectedFaults();
  std::vector<std::string> objects;
  for (int i = 0; i < 60; ++i) {
    std::string data(static_cast<size_t>(i * 997 % 40000), '\0');
    for (size_t k = 0; k < data.size(); ++k) {
      data[k] = static_cast<char>((k * 131 + i * 7) & 0xff);
    }
    objects.push_back(data);
    const Status written =
        (*store)->Write("o/" + std::to_string(i), AsBytes(data));
    ASSERT_TRUE(written.ok()) << "o/" << i << ": " << written;
  }
  for (int i = 0; i < 60; ++i) {
    const std::string key = "o/" + std::to_string(i);
    auto whole = (*store)->Read(key);
    ASSERT_TRUE(whole.ok()) << whole.status();
    EXPECT_EQ(whole->view(), objects[i]) << key;
    if (objects[i].size() > 100) {
      auto part = (*store)->ReadRange(key, 50, 40);
      ASSERT_TRUE(part.ok()) << part.status();
      EXPECT_EQ(part->view(), std::string_view(objects[i]).substr(50, 40));
    }
  }
  auto keys = (*store)->List("o/");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->size(), 60u);
  const auto [slowdown, reset] = InjectedFaults();
  EXPECT_GE(slowdown - slowdown_before, 5);
  EXPECT_GE(reset - reset_before, 2);
}

// Writes and deletes sent together get through 10 % 503s and 5 % resets
// each on its own, with every object whole afterwards.
TEST(S3StoreTest, WriteManyAndDeleteManyGetThroughInjectedFaults) {
  const std::string url = FreshUrl();
  const std::string faulty =
      url.substr(0, url.find('?')) + "?endpoint=" + S3Server::fault_endpoint;
  auto store = OpenStore(faulty);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<std::string> keys, objects;
  std::vector<ObjectWrite> writes;
  for (int i = 0; i < 50; ++i) {
    keys.push_back("w/" + std::to_string(i));
    objects.push_back(std::string(static_cast<size_t>(500 + 97 * i),
                                  static_cast<char>('a' + i % 26)));
  }
  for (int i = 0; i < 50; ++i) writes.push_back({keys[i], AsBytes(objects[i])});
  const auto [slowdown_before, reset_before] = InjectedFaults();
  const std::vector<Status> written = (*store)->WriteMany(writes);
  ASSERT_EQ(written.size(), 50u);
  auto reader = OpenStore(url);
  ASSERT_TRUE(reader.ok()) << reader.status();
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(written[i].ok()) << written[i];
    auto got = (*reader)->Read(keys[i]);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->view(), objects[i]) << keys[i];
  }
  const std::vector<Status> deleted = (*store)->DeleteMany(keys);
  for (const Status& s : deleted) EXPECT_TRUE(s.ok()) << s;
  auto left = (*reader)->List("w/");
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_TRUE(left->empty());
  const auto [slowdown, reset] = InjectedFaults();
  EXPECT_GE(slowdown + reset - slowdown_before - reset_before, 2)
      << "the faults are injected, so retries happened";
}

// A LIST longer than one page (S3 answers at most 1,000 keys) follows the
// continuation tokens: every key once, in order. (s3rver makes its tokens
// with DES, which OpenSSL 3 keeps in its legacy provider; the test server
// runs with it, else every LIST of a dataset past 1,000 chunks failed.)
TEST(S3StoreTest, ListsPastOnePage) {
  auto store = OpenStore(FreshUrl());
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<std::string> keys;
  std::vector<ObjectWrite> writes;
  for (int i = 0; i < 1100; ++i) {
    char key[16];
    std::snprintf(key, sizeof(key), "p/%05d", i);
    keys.push_back(key);
  }
  for (const std::string& key : keys) writes.push_back({key, AsBytes(key)});
  for (const Status& s : (*store)->WriteMany(writes)) ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE((*store)->Write("q", AsBytes("not listed")).ok());
  auto listed = (*store)->List("p/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(*listed, keys);
}

// Ranged reads sent together (one ReadRanges call) come back each as its
// own ReadRange would, in order, through 10 % 503s and 5 % resets: retried
// one by one, with a missing key and a range past the end failing alone.
// The bodies go into the caller's buffers.
TEST(S3StoreTest, ReadRangesGetThroughInjectedFaultsEachOnItsOwn) {
  const std::string url = FreshUrl();
  auto writer = OpenStore(url);
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::vector<std::string> objects, keys;
  for (int i = 0; i < 30; ++i) {
    std::string data(static_cast<size_t>(1000 + i * 211), '\0');
    for (size_t k = 0; k < data.size(); ++k) {
      data[k] = static_cast<char>((k * 37 + i * 11) & 0xff);
    }
    objects.push_back(data);
    keys.push_back("r/" + std::to_string(i));
    ASSERT_TRUE((*writer)->Write(keys.back(), AsBytes(data)).ok());
  }
  // The same objects through the faulty port.
  const std::string faulty =
      url.substr(0, url.find('?')) + "?endpoint=" + S3Server::fault_endpoint;
  auto store = OpenStore(faulty);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<RangeRead> ranges;
  for (int i = 0; i < 30; ++i) {
    ranges.push_back({keys[i], 0, objects[i].size()});
    ranges.push_back({keys[i], 100, 300 + static_cast<uint64_t>(i)});
  }
  ranges.push_back({"r/missing", 0, 10});
  ranges.push_back({keys[0], objects[0].size() - 5, 10});
  std::atomic<int> allocated{0};
  const auto [slowdown_before, reset_before] = InjectedFaults();
  auto got = (*store)->ReadRanges(ranges, [&](size_t bytes) {
    ++allocated;
    return MutableBuffer::Allocate(bytes);
  });
  ASSERT_EQ(got.size(), ranges.size());
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(got[2 * i].ok()) << got[2 * i].status();
    EXPECT_EQ(got[2 * i]->view(), objects[i]) << i;
    ASSERT_TRUE(got[2 * i + 1].ok()) << got[2 * i + 1].status();
    EXPECT_EQ(got[2 * i + 1]->view(),
              std::string_view(objects[i]).substr(100, 300 + i))
        << i;
  }
  EXPECT_EQ(got[60].status().code(), StatusCode::kNotFound) << got[60].status();
  EXPECT_EQ(got[61].status().code(), StatusCode::kOutOfRange)
      << got[61].status();
  EXPECT_GE(allocated.load(), 60);
  const auto [slowdown, reset] = InjectedFaults();
  EXPECT_GE(slowdown + reset - slowdown_before - reset_before, 2)
      << "the faults are injected, so retries happened";
}

// Replaces the fault proxy's rates (its spec, "503=P,reset=P,lost=P,...").
void SetFaults(const std::string& spec) {
  internal::HttpClient http;
  auto r = http.Send({.method = "PUT",
                      .url = S3Server::fault_endpoint + "/__shoal_faults",
                      .body = AsBytes(spec)});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200);
}

// An answer lost after the server acted (the connection closes instead):
// the client cannot tell, and retries. A conditional put that then finds
// its own first attempt is success, not a conflict (a commit once took it
// for a lost race and deleted the metadata its own commit named), while
// one that finds another's bytes is still AlreadyExists. Commits made
// through 10 % lost answers are all in, and the dataset reads back whole.
TEST(S3StoreTest, LostAnswersToConditionalPutsAreNotConflicts) {
  const int lost_before = Counts().lost;
  SetFaults("lost=0.1,latency=2");
  struct Restore {
    ~Restore() { SetFaults("503=0.1,reset=0.05,latency=2"); }
  } restore;
  auto store = OpenStore(FreshUrl(S3Server::fault_endpoint));
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 40; ++i) {
    const std::string key = "c/" + std::to_string(i);
    const std::string mine = "first " + std::to_string(i);
    ASSERT_TRUE((*store)->WriteIfAbsent(key, AsBytes(mine)).ok()) << key;
    const Status again = (*store)->WriteIfAbsent(key, AsBytes("second"));
    EXPECT_EQ(again.code(), StatusCode::kAlreadyExists) << key << ": " << again;
    auto got = (*store)->Read(key);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->view(), mine);
  }
  const std::string url = FreshUrl(S3Server::fault_endpoint);
  {
    auto ds = Dataset::Create(url, {.id_seed = 9});
    ASSERT_TRUE(ds.ok()) << ds.status();
    auto t =
        (*ds)->CreateTensor({.name = "v", .dtype = DType::kUInt32, .rank = 0});
    ASSERT_TRUE(t.ok()) << t.status();
    for (uint32_t i = 0; i < 20; ++i) {
      ASSERT_TRUE((*t)->Append(Shape{}, AsBytes(std::string_view(
                                            reinterpret_cast<const char*>(&i),
                                            sizeof i)))
                      .ok());
      const Status flushed = (*ds)->Flush();
      ASSERT_TRUE(flushed.ok()) << "flush " << i << ": " << flushed;
    }
    ASSERT_TRUE((*ds)->Close().ok());
  }
  EXPECT_GE(Counts().lost - lost_before, 10) << "answers were lost";
  SetFaults("");
  auto back = Dataset::Open(url, {.read_only = true});
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->commit(), 20u);
  ASSERT_EQ((*back)->len(), 20u);
  for (uint32_t i = 0; i < 20; ++i) {
    auto s = (*(*back)->tensor("v"))->Read(i);
    ASSERT_TRUE(s.ok()) << s.status();
    uint32_t v = 0;
    std::memcpy(&v, s->data.span().data(), sizeof v);
    EXPECT_EQ(v, i);
  }
}

// A missing key fails at once (404 is not retried), naming the key, also
// behind the faults.
TEST(S3StoreTest, NotFoundIsNotRetried) {
  auto store = OpenStore(FreshUrl(S3Server::fault_endpoint));
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 10; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto missing = (*store)->Read("nothing/here");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
    EXPECT_NE(missing.status().message().find("nothing/here: HTTP 404"),
              std::string_view::npos)
        << missing.status();
    // An injected fault before it is retried (backoff up to 2 s); a 404
    // itself never is.
    EXPECT_LT(std::chrono::steady_clock::now() - start,
              std::chrono::seconds(3));
  }
}

TEST(S3StoreTest, SettingsComeFromTheEnvironment) {
  setenv("AWS_ENDPOINT_URL_S3", S3Server::endpoint.c_str(), 1);
  setenv("AWS_REGION", "eu-west-3", 1);
  auto store = OpenStore("s3://shoal-test/env-" + std::to_string(getpid()));
  unsetenv("AWS_ENDPOINT_URL_S3");
  unsetenv("AWS_REGION");
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Write("x", AsBytes("env")).ok());
  auto back = (*store)->Read("x");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->view(), "env");
  unsetenv("AWS_ACCESS_KEY_ID");
  auto none = OpenStore("s3://shoal-test/x?endpoint=" + S3Server::endpoint);
  setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no credentials"),
            std::string_view::npos);
}

// A dataset made in mem:// goes to s3:// and back, through the faults too,
// sample for sample; the copy in S3 opens and reads like the original.
TEST(S3StoreTest, CopyDatasetToS3AndBack) {
  {
    auto ds = Dataset::Create("mem://s3-copy-src", {.overwrite = true});
    ASSERT_TRUE(ds.ok()) << ds.status();
    auto t = (*ds)->CreateTensor({.name = "x",
                                  .dtype = DType::kUInt16,
                                  .chunk_compression = "zstd:3",
                                  .max_chunk_bytes = 4096});
    ASSERT_TRUE(t.ok()) << t.status();
    for (uint16_t i = 0; i < 500; ++i) {
      std::vector<uint16_t> v(1 + i % 40, i);
      ASSERT_TRUE(
          (*t)->Append(Shape{v.size()}, std::as_bytes(std::span(v))).ok());
    }
    ASSERT_TRUE((*ds)->Close().ok());
  }
  const std::string s3 = FreshUrl(S3Server::fault_endpoint);
  auto up = CopyDataset("mem://s3-copy-src", s3, {.threads = 4});
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_GT(up->objects, 10u);
  auto down = CopyDataset(s3, "mem://s3-copy-back");
  ASSERT_TRUE(down.ok()) << down.status();
  for (const std::string& url : {s3, std::string("mem://s3-copy-back")}) {
    auto a = Dataset::Open("mem://s3-copy-src", {.read_only = true});
    auto b = Dataset::Open(url, {.read_only = true});
    ASSERT_TRUE(a.ok() && b.ok()) << url;
    auto ta = (*a)->tensor("x");
    auto tb = (*b)->tensor("x");
    ASSERT_TRUE(ta.ok() && tb.ok());
    ASSERT_EQ((*tb)->size(), 500u);
    for (uint64_t i = 0; i < 500; ++i) {
      auto sa = (*ta)->Read(i);
      auto sb = (*tb)->Read(i);
      ASSERT_TRUE(sa.ok() && sb.ok()) << url << " " << i;
      ASSERT_EQ(sa->data.view(), sb->data.view()) << url << " " << i;
    }
  }
}

// gs:// is the same store with Google Cloud Storage's defaults; against
// the local server (endpoint given) it works like s3://, and names itself
// gs:// in its messages.
TEST(S3StoreTest, GsIsTheSameStoreUnderItsOwnName) {
  auto store = OpenStore("gs://shoal-test/gs-" + std::to_string(getpid()) +
                         "?endpoint=" + S3Server::endpoint);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->url().starts_with("gs://shoal-test/"));
  ASSERT_TRUE((*store)->Write("k", AsBytes("gcs")).ok());
  auto back = (*store)->Read("k");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->view(), "gcs");
  auto missing = (*store)->Read("none");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("gs://shoal-test/"),
            std::string_view::npos)
      << missing.status();
}

// Objects above the threshold go up in parts: one object appears, whole,
// also through the injected faults (a failed part is retried alone).
TEST(S3StoreTest, LargeObjectsGoUpInParts) {
  for (const std::string& endpoint :
       {S3Server::endpoint, S3Server::fault_endpoint}) {
    auto store = OpenStore(FreshUrl(endpoint) +
                           "&multipart_threshold=100000&part_size=40000");
    ASSERT_TRUE(store.ok()) << store.status();
    const int parts_before = Counts().parts;
    std::string data(250001, '\0');
    for (size_t k = 0; k < data.size(); ++k) {
      data[k] = static_cast<char>(k * 2654435761u >> 13);
    }
    ASSERT_TRUE((*store)->Write("big/object", AsBytes(data)).ok());
    // 250001 bytes in parts of 40000: 7 parts (more when one was retried).
    EXPECT_GE(Counts().parts - parts_before, 7) << endpoint;
    auto back = (*store)->Read("big/object");
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(back->view() == data) << endpoint;
    auto size = (*store)->Size("big/object");
    ASSERT_TRUE(size.ok());
    EXPECT_EQ(*size, data.size());
    auto part = (*store)->ReadRange("big/object", 39990, 30);
    ASSERT_TRUE(part.ok()) << part.status();
    EXPECT_EQ(part->view(), std::string_view(data).substr(39990, 30));
    auto keys = (*store)->List("");
    ASSERT_TRUE(keys.ok());
    EXPECT_EQ(*keys, std::vector<std::string>{"big/object"});
  }
}

// The answer to a CompleteMultipartUpload that went through, lost (half
// of them here): the retry finds the upload gone (s3rver answers 500, S3
// 404 NoSuchUpload), and the write once failed although its object was in. The
// object's size and ETag tell that it is (sigv4.h, EtagMatches).
TEST(S3StoreTest, LostAnswersToMultipartCompletionsAreNotFailures) {
  const ProxyCounts before = Counts();
  SetFaults("lost_completion=0.5,latency=1");
  struct Restore {
    ~Restore() { SetFaults("503=0.1,reset=0.05,latency=2"); }
  } restore;
  auto store = OpenStore(FreshUrl(S3Server::fault_endpoint) +
                         "&multipart_threshold=100000&part_size=40000");
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<std::string> objects;
  for (int i = 0; i < 20; ++i) {
    std::string data(150001 + i, '\0');
    for (size_t k = 0; k < data.size(); ++k) {
      data[k] = static_cast<char>((k + i) * 2654435761u >> 13);
    }
    const std::string key = "big/" + std::to_string(i);
    const Status written = (*store)->Write(key, AsBytes(data));
    ASSERT_TRUE(written.ok()) << key << ": " << written;
    objects.push_back(std::move(data));
  }
  SetFaults("");
  for (int i = 0; i < 20; ++i) {
    auto back = (*store)->Read("big/" + std::to_string(i));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(back->view() == objects[i]) << i;
  }
  EXPECT_GE(Counts().lost_completions - before.lost_completions, 3)
      << "answers to completions were lost";
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
