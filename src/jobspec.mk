# src/jobspec.c: the POST /jobs spec parser, part of the core library.
src_libkadr_a_SOURCES += src/jobspec.c src/jobspec.h
