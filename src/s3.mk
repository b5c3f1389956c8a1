# S3/MinIO storage backend (issue #6): SigV4 signer and the S3 client.
src_libkadr_a_SOURCES += src/sigv4.c src/sigv4.h
src_libkadr_a_SOURCES += src/storage_int.h src/storage_s3.c
dist_pkgdata_DATA += sql/005_s3.sql
