// S3's XML answers (format/internal/s3_xml.h).
#include "format/internal/s3_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <climits>
#include <string_view>

namespace shoal::internal {
namespace {

// A parsed document; no root when the bytes are not XML. libxml2 limits
// nesting depth by itself (no XML_PARSE_HUGE), so the walks below are
// bounded.
class XmlDoc {
 public:
  explicit XmlDoc(ByteSpan body) {
    if (body.size() > INT_MAX) return;
    doc_ = xmlReadMemory(
        reinterpret_cast<const char*>(body.data()),
        static_cast<int>(body.size()), "response.xml", nullptr,
        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  }
  ~XmlDoc() {
    if (doc_) xmlFreeDoc(doc_);
  }
  XmlDoc(const XmlDoc&) = delete;
  XmlDoc& operator=(const XmlDoc&) = delete;
  xmlNode* root() const { return doc_ ? xmlDocGetRootElement(doc_) : nullptr; }

 private:
  xmlDoc* doc_ = nullptr;
};

bool Named(const xmlNode* n, std::string_view name) {
  return n->type == XML_ELEMENT_NODE &&
         name == reinterpret_cast<const char*>(n->name);
}

// The text of the first element named `name` among `node` and its
// siblings, depth first.
std::string Text(xmlNode* node, std::string_view name) {
  for (xmlNode* n = node; n != nullptr; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    if (Named(n, name)) {
      xmlChar* text = xmlNodeGetContent(n);
      std::string out = text ? reinterpret_cast<const char*>(text) : "";
      xmlFree(text);
      return out;
    }
    std::string inner = Text(n->children, name);
    if (!inner.empty()) return inner;
  }
  return "";
}

}  // namespace

S3ErrorFields ParseS3Error(ByteSpan body) {
  S3ErrorFields out;
  if (body.empty()) return out;
  XmlDoc xml(body);
  xmlNode* root = xml.root();
  if (root == nullptr) return out;
  out.is_error = Named(root, "Error");
  out.code = Text(root, "Code");
  out.message = Text(root, "Message");
  out.request_id = Text(root, "RequestId");
  return out;
}

Result<S3ListPage> ParseS3ListPage(ByteSpan body) {
  XmlDoc xml(body);
  xmlNode* root = xml.root();
  if (root == nullptr) return Corruption("the response is not XML");
  S3ListPage page;
  for (xmlNode* n = root->children; n != nullptr; n = n->next) {
    if (Named(n, "Contents")) page.keys.push_back(Text(n->children, "Key"));
  }
  page.truncated = Text(root->children, "IsTruncated") == "true";
  if (page.truncated) {
    page.continuation_token = Text(root->children, "NextContinuationToken");
    if (page.continuation_token.empty()) {
      return Corruption("truncated without a continuation token");
    }
  }
  return page;
}

std::string ParseS3UploadId(ByteSpan body) {
  XmlDoc xml(body);
  return xml.root() ? Text(xml.root(), "UploadId") : "";
}

}  // namespace shoal::internal
