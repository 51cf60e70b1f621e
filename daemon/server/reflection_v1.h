// grpc.reflection.v1: the stable name of server reflection, served beside the v1alpha one
// that gRPC 1.51's reflection plugin provides (it has no v1). Tools that ask v1 first
// (grpcurl, Postman, newer grpc_cli) then work without falling back.
//
//   std::unique_ptr<grpc::Service> v1 = NewReflectionV1Service(names);
//   builder.RegisterService(v1.get());
//
// It answers from the process's generated descriptor pool, like the v1alpha plugin:
// list_services, file_by_filename, file_containing_symbol, file_containing_extension and
// all_extension_numbers_of_type (each file with its dependencies, each sent once per
// stream); an unknown name is an error_response NOT_FOUND inside the stream.
#ifndef MAILPOOL_DAEMON_SERVER_REFLECTION_V1_H_
#define MAILPOOL_DAEMON_SERVER_REFLECTION_V1_H_

#include <memory>
#include <string>
#include <vector>

namespace grpc {
class Service;
}

namespace mailpool::server {

// `service_names`: what list_services answers (the server's services, this one included).
// Thread-safe (gRPC's sync handler threads).
std::unique_ptr<grpc::Service> NewReflectionV1Service(std::vector<std::string> service_names);

}  // namespace mailpool::server

#endif  // MAILPOOL_DAEMON_SERVER_REFLECTION_V1_H_
