#!/usr/bin/env bash
# Refuses the C functions that have no place in kadr (unbounded copies,
# non-reentrant tokenising, shelling out), in the programs' sources. Tests may
# use system() to look for tools. Prints "ok" or each offending line; the exit
# status says which.
set -u
cd "$(dirname "$0")/.."
banned='\b(strcpy|strcat|sprintf|vsprintf|strtok|gets|system|popen|atoi|atol)[[:space:]]*\('
hits=$(grep -nE "$banned" src/*.c src/*.h fcgi/*.c fcgi/*.h workers/*.c workers/*.h notify/*.c notify/*.h tools/*.c 2>/dev/null |
       grep -vE '^\S+:[0-9]+:\s*(/\*|\*)' || true)
if [ -n "$hits" ]; then
    echo "banned functions in use:"
    echo "$hits"
    exit 1
fi
echo ok
