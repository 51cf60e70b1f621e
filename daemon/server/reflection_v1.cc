// grpc.reflection.v1.ServerReflection over the generated descriptor pool (see the header).
#include "server/reflection_v1.h"

#include <grpcpp/grpcpp.h>

#include <set>
#include <utility>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace mailpool::server {
namespace {

namespace v1 = grpc::reflection::v1;
using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;

class ReflectionV1 final : public v1::ServerReflection::Service {
 public:
  explicit ReflectionV1(std::vector<std::string> names) : names_(std::move(names)) {}

  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::ServerReflectionResponse, v1::ServerReflectionRequest>* stream)
      override {
    const DescriptorPool* pool = DescriptorPool::generated_pool();
    std::set<std::string> sent;  // files already sent on this stream
    v1::ServerReflectionRequest request;
    while (stream->Read(&request)) {
      v1::ServerReflectionResponse response;
      response.set_valid_host(request.host());
      *response.mutable_original_request() = request;
      switch (request.message_request_case()) {
        case v1::ServerReflectionRequest::kListServices:
          for (const auto& name : names_) {
            response.mutable_list_services_response()->add_service()->set_name(name);
          }
          break;
        case v1::ServerReflectionRequest::kFileByFilename:
          Files(pool->FindFileByName(request.file_by_filename()), &sent, &response);
          break;
        case v1::ServerReflectionRequest::kFileContainingSymbol:
          Files(pool->FindFileContainingSymbol(request.file_containing_symbol()), &sent, &response);
          break;
        case v1::ServerReflectionRequest::kFileContainingExtension: {
          const auto& ext = request.file_containing_extension();
          const auto* type = pool->FindMessageTypeByName(ext.containing_type());
          const auto* field =
              type ? pool->FindExtensionByNumber(type, ext.extension_number()) : nullptr;
          Files(field ? field->file() : nullptr, &sent, &response);
          break;
        }
        case v1::ServerReflectionRequest::kAllExtensionNumbersOfType: {
          const auto* type = pool->FindMessageTypeByName(request.all_extension_numbers_of_type());
          if (type == nullptr) {
            NotFound(&response);
            break;
          }
          std::vector<const google::protobuf::FieldDescriptor*> extensions;
          pool->FindAllExtensions(type, &extensions);
          auto* numbers = response.mutable_all_extension_numbers_response();
          numbers->set_base_type_name(type->full_name());
          for (const auto* e : extensions) numbers->add_extension_number(e->number());
          break;
        }
        default: {
          auto* error = response.mutable_error_response();
          error->set_error_code(static_cast<int>(grpc::StatusCode::UNIMPLEMENTED));
          error->set_error_message("unknown reflection request");
          break;
        }
      }
      if (!stream->Write(response)) break;
      if (context->IsCancelled()) break;
    }
    return grpc::Status::OK;
  }

 private:
  static void NotFound(v1::ServerReflectionResponse* response) {
    auto* error = response->mutable_error_response();
    error->set_error_code(static_cast<int>(grpc::StatusCode::NOT_FOUND));
    error->set_error_message("not found");
  }

  // `file` and the dependencies not sent yet (the file first, as reflection clients expect).
  static void Files(const FileDescriptor* file, std::set<std::string>* sent,
                    v1::ServerReflectionResponse* response) {
    if (file == nullptr) return NotFound(response);
    auto* out = response->mutable_file_descriptor_response();
    std::vector<const FileDescriptor*> todo = {file};
    bool first = true;
    while (!todo.empty()) {
      const FileDescriptor* f = todo.back();
      todo.pop_back();
      // The requested file always goes (a client may ask again on purpose).
      if (!first && !sent->insert(f->name()).second) continue;
      if (first) sent->insert(f->name());
      first = false;
      google::protobuf::FileDescriptorProto proto;
      f->CopyTo(&proto);
      out->add_file_descriptor_proto(proto.SerializeAsString());
      for (int i = 0; i < f->dependency_count(); ++i) todo.push_back(f->dependency(i));
    }
  }

  const std::vector<std::string> names_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewReflectionV1Service(std::vector<std::string> service_names) {
  return std::make_unique<ReflectionV1>(std::move(service_names));
}

}  // namespace mailpool::server
