# Writes OUTPUT, a C++ file defining `std::string_view NAME()` that returns
# the bytes of INPUT: the status page is one file in the tree, and one
# string in the binary.
#   cmake -DINPUT=status.html -DOUTPUT=status_page.cpp -DNAME=status_page -P embed.cmake
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUTPUT}.tmp"
  "// Generated from ${INPUT} by embed.cmake; do not edit.\n"
  "#include <string_view>\n\n"
  "namespace salam::daemon {\n\n"
  "namespace {\nconst unsigned char bytes[] = {\n${bytes}};\n}  // namespace\n\n"
  "std::string_view ${NAME}() noexcept {\n  return {reinterpret_cast<const char*>(bytes), sizeof bytes};\n}\n\n"
  "}  // namespace salam::daemon\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
