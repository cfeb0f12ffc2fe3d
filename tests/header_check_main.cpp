// Links every generated header TU (tests/header_tu.cpp.in) into one program, so a header that
// defines a non-inline function or variable fails to link (it is included by several TUs).
int main() { return 0; }
