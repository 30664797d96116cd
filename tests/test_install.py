# SPDX-License-Identifier: MIT
"""weft as a library others adopt: `make install`, weft.pc, the shared
library's SONAME and exports, a static library whose internals cannot clash
with a program's names, the header in C and C++, and a build that takes the
caller's CPPFLAGS/CFLAGS/LDFLAGS as additions.

Native target only (the one `make install` builds). The tree is installed
once, with `make install DESTDIR=<tmp> PREFIX=/usr`, from this checkout's
build; programs are compiled against the installed copy through pkg-config
(PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR point into the temporary root).
Every command runs in its own process with a timeout."""

import os
import platform
import re
import shutil
import subprocess

import pytest

from conftest import DEFAULT_TARGETS, ROOT

NATIVE = "linux-" + platform.machine()
TARGETS = os.environ.get("WEFT_TARGETS", DEFAULT_TARGETS).split()
pytestmark = pytest.mark.skipif(NATIVE not in TARGETS,
                                reason=f"the native target {NATIVE} is not under test")

HEADER = os.path.join(ROOT, "include", "weft.h")
NM, READELF = "nm", "readelf"


def clean_env(**extra):
    """The environment for a nested make or compiler: none of the calling
    make's MAKEFLAGS (its jobserver, its command-line variables)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "CFLAGS",
                        "CPPFLAGS", "LDFLAGS", "PKG_CONFIG_PATH", "PKG_CONFIG_SYSROOT_DIR",
                        "PKG_CONFIG_LIBDIR")}
    env.update(extra)
    return env


def run(cmd, timeout=300, env=None, cwd=None, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=env if env is not None else clean_env(), cwd=cwd)
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def header_version():
    text = open(HEADER).read()
    part = lambda n: int(re.search(rf"^#define WEFT_VERSION_{n} (\d+)$", text, re.M).group(1))
    return part("MAJOR"), part("MINOR"), part("PATCH")


def header_api():
    """{name: declaration} of every function weft.h declares (comments
    stripped; a declaration is the text since the previous ; { } or #line)."""
    text = re.sub(r"/\*.*?\*/", " ", open(HEADER).read(), flags=re.S)
    text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
    decls = {}
    for stmt in re.split(r"[;{}]", text):
        m = re.search(r"\b(weft_\w+)\s*\(", stmt)
        if m and "typedef" not in stmt:
            decls[m.group(1)] = " ".join(stmt.split())
    return decls


def defined_globals(args):
    """Names of the defined global symbols `nm args` lists."""
    out = run([NM, *args]).stdout
    return {parts[2] for parts in (l.split() for l in out.splitlines()) if len(parts) >= 3}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`make install DESTDIR=<tmp>/root PREFIX=/usr`; returns the root."""
    for tool in ("pkg-config", "gcc", NM, READELF):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not installed: run scripts/deps.sh")
    root = tmp_path_factory.mktemp("install") / "root"
    run(["make", "--no-print-directory", "-j2", "install", f"DESTDIR={root}", "PREFIX=/usr"],
        timeout=600, cwd=ROOT)
    return root


def pc_env(root):
    return clean_env(PKG_CONFIG_PATH=str(root / "usr/lib/pkgconfig"),
                     PKG_CONFIG_SYSROOT_DIR=str(root))


def pkg_config(root, *args):
    return run(["pkg-config", *args, "weft"], env=pc_env(root)).stdout.split()


def build(root, src, out, link, compiler="gcc", std="-std=c11"):
    """Compiles src against the installed weft, linked "shared" or "static"
    (the archive, through `pkg-config --static`)."""
    cflags = pkg_config(root, "--cflags")
    if link == "shared":
        libs = pkg_config(root, "--libs")
    else:
        libs = ["-Wl,-Bstatic", *pkg_config(root, "--libs", "--static"), "-Wl,-Bdynamic"]
    run([compiler, std, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(src),
         *cflags, *libs], timeout=120)
    return out


def run_program(root, exe, timeout=60):
    env = clean_env(LD_LIBRARY_PATH=str(root / "usr/lib"))
    return subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout, env=env)


def needed(exe):
    out = run([READELF, "-d", str(exe)]).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def test_installed_tree(installed):
    major, minor, patch = header_version()
    lib = installed / "usr/lib"
    files = sorted(str(p.relative_to(installed)) for p in installed.rglob("*")
                   if p.is_file() or p.is_symlink())
    assert files == sorted([
        "usr/include/weft.h", "usr/lib/libweft.a", f"usr/lib/libweft.so.{major}.{minor}.{patch}",
        f"usr/lib/libweft.so.{major}", "usr/lib/libweft.so", "usr/lib/pkgconfig/weft.pc"]), files
    assert os.readlink(lib / f"libweft.so.{major}") == f"libweft.so.{major}.{minor}.{patch}"
    assert os.readlink(lib / "libweft.so") == f"libweft.so.{major}"
    assert (installed / "usr/include/weft.h").read_text() == open(HEADER).read()
    pc = (lib / "pkgconfig/weft.pc").read_text()
    assert re.search(r"^prefix=/usr$", pc, re.M), pc
    assert re.search(r"^Libs\.private:.*-pthread", pc, re.M), pc
    assert run(["pkg-config", "--modversion", "weft"], env=pc_env(installed)).stdout.strip() \
        == f"{major}.{minor}.{patch}"
    assert pkg_config(installed, "--cflags") == [f"-I{installed}/usr/include"]
    assert pkg_config(installed, "--libs") == [f"-L{installed}/usr/lib", "-lweft"]
    assert "-pthread" in pkg_config(installed, "--libs", "--static")


def test_soname(installed):
    major, minor, patch = header_version()
    so = installed / f"usr/lib/libweft.so.{major}.{minor}.{patch}"
    out = run([READELF, "-d", str(so)]).stdout
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out)
    assert m, out
    assert m.group(1) == f"libweft.so.{major}"


def test_every_api_function_has_the_export_macro():
    api = header_api()
    assert len(api) > 50 and "weft_run" in api and "weft_version" in api, sorted(api)
    missing = [n for n, decl in api.items() if "WEFT_EXTERN" not in decl.split(n)[0]]
    assert not missing, f"declared without WEFT_EXTERN: {missing}"


def test_shared_library_exports_only_the_api(installed):
    """nm -D: every defined symbol is a function of weft.h, and every function
    of weft.h is there; what remains are imports (libc)."""
    so = str(installed / "usr/lib/libweft.so")
    exported = defined_globals(["-D", "--defined-only", so])
    assert exported == set(header_api()), (
        f"not in weft.h: {sorted(exported - set(header_api()))}; "
        f"missing: {sorted(set(header_api()) - exported)}")
    for line in run([NM, "-D", so]).stdout.splitlines():
        parts = line.split()
        assert parts[-1].startswith("weft_") or parts[0] in ("U", "w"), line


def test_static_library_keeps_internals_local(installed):
    """The archive's global definitions are the API alone: kern's and the
    port's names are local symbols, invisible to the program's link."""
    archive = str(installed / "usr/lib/libweft.a")
    assert defined_globals(["-g", "--defined-only", archive]) == set(header_api())
    local = run([NM, archive]).stdout
    assert re.search(r" t k_free$", local, re.M) and re.search(r" t hal_now_ns$", local, re.M), \
        "expected k_free and hal_now_ns as local symbols in libweft.a"


PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include <weft.h>

static void sleeper(void *arg)
{
    weft_sleep(1000000);
    weft_wg_done(arg);
}

static void main_task(void *arg)
{
    weft_waitgroup wg = {0};
    weft_wg_add(&wg, 100);
    for (int i = 0; i < 100; i++)
        weft_go(sleeper, &wg);
    weft_chan *c = weft_chan_make(sizeof(int), 1);
    int v = 7, w = 0;
    weft_chan_send(c, &v);
    weft_chan_recv(c, &w);
    weft_chan_free(c);
    weft_wg_wait(&wg);
    *(int *)arg = w;
}

int main(void)
{
    int got = 0;
    int64_t t0 = weft_now();
    int rc = weft_run(main_task, &got, NULL);
    printf("version %s rc %d got %d slept %d\n", weft_version(), rc, got,
           weft_now() - t0 >= 1000000);
    return rc == 0 && got == 7 ? 0 : 1;
}
"""


@pytest.mark.parametrize("link", ["shared", "static"])
def test_program_through_pkg_config_runs(installed, tmp_path, link):
    src = tmp_path / "prog.c"
    src.write_text(PROGRAM)
    exe = build(installed, src, tmp_path / "prog", link)
    major = header_version()[0]
    if link == "shared":
        assert f"libweft.so.{major}" in needed(exe)
    else:
        assert not [n for n in needed(exe) if n.startswith("libweft")], needed(exe)
    p = run_program(installed, exe)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "version %d.%d.%d rc 0 got 7 slept 1" % header_version(), p.stdout


# kern's k_free and the port's hal_now_ns, defined by the program for its own
# use. Before weft hid them, the static link failed (k_free defined twice)
# and the shared library called the program's hal_now_ns, whose frozen clock
# made every sleep last forever.
OWN_NAMES = r"""
#include <stdint.h>
#include <stdio.h>
#include <weft.h>

static int now_calls, free_calls;

int64_t hal_now_ns(void)
{
    now_calls++;
    return 42;
}

void k_free(void *p)
{
    (void)p;
    free_calls++;
}

static void sleeper(void *arg)
{
    weft_sleep(2000000);
    weft_wg_done(arg);
}

static void main_task(void *arg)
{
    (void)arg;
    weft_waitgroup wg = {0};
    weft_wg_add(&wg, 50);
    for (int i = 0; i < 50; i++)
        weft_go(sleeper, &wg);
    for (int i = 0; i < 20; i++) {
        weft_chan *c = weft_chan_make(64, 4);
        weft_timer *t = weft_timer_new(100000, 0);
        int64_t fired;
        weft_chan_recv(weft_timer_chan(t), &fired);
        weft_timer_free(t);
        weft_chan_free(c);
    }
    weft_wg_wait(&wg);
}

int main(void)
{
    int64_t t0 = weft_now();
    int rc = weft_run(main_task, NULL, NULL);
    int64_t elapsed = weft_now() - t0;
    k_free(NULL);
    int64_t mine = hal_now_ns();
    printf("rc %d now_calls %d free_calls %d mine %lld elapsed_ok %d\n", rc, now_calls,
           free_calls, (long long)mine, elapsed >= 2000000 && elapsed < 10000000000LL);
    return rc == 0 && now_calls == 1 && free_calls == 1 && mine == 42 ? 0 : 1;
}
"""


@pytest.mark.parametrize("link", ["shared", "static"])
def test_program_with_own_hal_now_ns_and_k_free(installed, tmp_path, link):
    src = tmp_path / "own.c"
    src.write_text(OWN_NAMES)
    exe = build(installed, src, tmp_path / "own", link)
    try:
        p = run_program(installed, exe, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("hung: weft called the program's hal_now_ns")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "rc 0 now_calls 1 free_calls 1 mine 42 elapsed_ok 1", p.stdout


HEADER_C = r"""
#include <weft.h>
#include <weft.h> /* twice: the include guard */

_Static_assert(WEFT_VERSION_HEX == ((WEFT_VERSION_MAJOR << 16) | (WEFT_VERSION_MINOR << 8) |
                                    WEFT_VERSION_PATCH), "WEFT_VERSION_HEX");

static void task(void *arg) { (void)arg; weft_exit(); }

int use_api(void)
{
    weft_config cfg = {0};
    weft_case cases[1] = {{0}};
    struct weft_stats st;
    (void)cases;
    (void)weft_stats(&st);
    return weft_run(task, 0, &cfg) + (weft_version()[0] != 0);
}
"""

HEADER_CXX = r"""
#include <weft.h>
#include <type_traits>

static_assert(WEFT_VERSION_HEX == ((WEFT_VERSION_MAJOR << 16) | (WEFT_VERSION_MINOR << 8) |
                                   WEFT_VERSION_PATCH), "WEFT_VERSION_HEX");
static_assert(std::is_same<decltype(&weft_version), const char *(*)()>::value, "weft_version");
static_assert(sizeof(weft_fd) == sizeof(void *), "weft_fd");

static void task(void *arg) { static_cast<weft_waitgroup *>(arg)->pad_ = 0; weft_exit(); }

int use_api()
{
    weft_config cfg = {};
    weft_waitgroup wg = {};
    weft_mutex m = {};
    struct weft_stats st;
    (void)m;
    (void)weft_stats(&st);
    return weft_run(task, &wg, &cfg) + (weft_version()[0] != 0);
}
"""

STRICT = ["-Wall", "-Wextra", "-pedantic", "-Werror"]
HEADER_CASES = [("gcc", f"-std={s}", HEADER_C, "c") for s in ("c11", "c17", "c2x")] + \
    [("g++", f"-std={s}", HEADER_CXX, "cc") for s in ("c++11", "c++14", "c++17", "c++20")] + \
    [("clang", "-std=c11", HEADER_C, "c"), ("clang++", "-std=c++11", HEADER_CXX, "cc")]


@pytest.mark.parametrize("compiler,std,text,ext", HEADER_CASES,
                         ids=[f"{c}{s}" for c, s, _, _ in HEADER_CASES])
def test_header_compiles(tmp_path, compiler, std, text, ext):
    if not shutil.which(compiler):
        if compiler.startswith("clang"):
            pytest.skip(f"{compiler} not installed (optional)")
        pytest.fail(f"{compiler} not installed: run scripts/deps.sh")
    src = tmp_path / f"use.{ext}"
    src.write_text(text)
    run([compiler, std, *STRICT, "-I", os.path.join(ROOT, "include"), "-c", str(src), "-o",
         str(tmp_path / "use.o")], timeout=120)


def test_cxx_program_links_and_runs(installed, tmp_path):
    if not shutil.which("g++"):
        pytest.fail("g++ not installed: run scripts/deps.sh")
    src = tmp_path / "prog.cc"
    src.write_text(HEADER_CXX + "int main() { return use_api() == 1 ? 0 : 1; }\n")
    exe = build(installed, src, tmp_path / "prog", "shared", compiler="g++", std="-std=c++11")
    p = run_program(installed, exe)
    assert p.returncode == 0, p.stdout + p.stderr


CMAKELISTS = """
cmake_minimum_required(VERSION 3.10)
project(prog C)
find_package(PkgConfig REQUIRED)
pkg_check_modules(WEFT REQUIRED IMPORTED_TARGET weft)
add_executable(prog prog.c)
target_link_libraries(prog PRIVATE PkgConfig::WEFT)
"""


def test_cmake_pkg_check_modules(installed, tmp_path):
    """The README's CMake lines build a program against the installed weft.
    Optional: cmake is not among the packages `make test` installs."""
    if not shutil.which("cmake"):
        pytest.skip("cmake not installed (optional)")
    src = tmp_path / "src"
    src.mkdir()
    (src / "prog.c").write_text(PROGRAM)
    (src / "CMakeLists.txt").write_text(CMAKELISTS)
    env = pc_env(installed)
    run(["cmake", "-S", str(src), "-B", str(tmp_path / "b")], env=env, timeout=120)
    run(["cmake", "--build", str(tmp_path / "b")], env=env, timeout=120)
    p = run_program(installed, tmp_path / "b" / "prog")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "libweft.so.%d" % header_version()[0] in needed(tmp_path / "b" / "prog")


def test_uninstall_removes_what_install_put(tmp_path):
    root = tmp_path / "root"
    args = ["make", "--no-print-directory", f"DESTDIR={root}", "PREFIX=/opt/weft",
            "LIBDIR=/opt/weft/lib64", "INCLUDEDIR=/opt/weft/inc"]
    run([*args, "install"], timeout=600, cwd=ROOT)
    pc = (root / "opt/weft/lib64/pkgconfig/weft.pc").read_text()
    assert "libdir=${prefix}/lib64" in pc and "includedir=${prefix}/inc" in pc, pc
    assert (root / "opt/weft/inc/weft.h").is_file()
    run([*args, "uninstall"], timeout=120, cwd=ROOT)
    left = [str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()]
    assert not left, left


def tree_copy(dst):
    for d in ("mk", "scripts", "hal", "include", "kern", "tests", "examples"):
        shutil.copytree(os.path.join(ROOT, d), dst / d)
    for f in ("Makefile", "weft.pc.in"):
        shutil.copy(os.path.join(ROOT, f), dst / f)
    return dst


def test_callers_flags_are_additions(tmp_path):
    """`make CFLAGS=... LDFLAGS=...` in a copy of the tree: the caller's flags
    reach every compile and link, weft's required ones stay (kern keeps
    -fno-stack-protector against the caller's -fstack-protector-all, links
    keep -pthread), the result works, and a second make does nothing."""
    root = tree_copy(tmp_path / "weft")
    args = ["make", "--no-print-directory", "V=1",
            "CFLAGS=-DWEFT_CALLER_FLAG -fstack-protector-all", "LDFLAGS=-Wl,-z,now"]
    env = clean_env(WERROR="")
    out = run([*args, "-j2"], timeout=900, cwd=root, env=env).stdout
    b = root / "build" / NATIVE
    compiles = [l for l in out.splitlines() if " -c " in l]
    links = [l for l in out.splitlines() if " -o " in l and " -c " not in l and " -r " not in l]
    assert compiles and links, out
    for line in compiles:
        assert "-DWEFT_CALLER_FLAG" in line, line
        assert "-Werror" not in line, line
    for line in (l for l in compiles if re.search(r"\skern/\S+\.c\b", l)):
        assert line.rfind("-fno-stack-protector") > line.rfind("-fstack-protector-all"), line
    for line in links:
        assert "-Wl,-z,now" in line and "-pthread" in line, line
    kern_undef = run([NM, "-u", *map(str, (b / "obj/kern").glob("*.o"))]).stdout
    assert "__stack_chk_fail" not in kern_undef
    for exe in ("weft-test", "demo", "libweft.so"):
        dyn = run([READELF, "-d", str(b / exe)]).stdout
        assert re.search(r"\(FLAGS\)\s+BIND_NOW|\(FLAGS_1\)\s+Flags: NOW", dyn), (exe, dyn)
    for case in ("sched_basic", "chan_unbuffered"):
        p = subprocess.run([str(b / "weft-test"), "run", case], capture_output=True, text=True,
                           timeout=60, env=clean_env())
        assert p.returncode == 0, (case, p.stdout + p.stderr)
    p = subprocess.run([str(b / "demo")], capture_output=True, text=True, timeout=120,
                       env=clean_env())
    assert p.returncode == 0 and "demo: OK" in p.stdout, p.stdout + p.stderr
    again = run([*args], timeout=300, cwd=root, env=env).stdout
    assert "Nothing to be done" in again and " -o " not in again, again
    # A different CFLAGS is a different build: everything is compiled again.
    other = run([*args[:3], "CFLAGS=-DWEFT_OTHER_FLAG", "-j2"], timeout=900, cwd=root, env=env)
    assert "kern/alloc.c" in other.stdout and "-DWEFT_OTHER_FLAG" in other.stdout, other.stdout


def test_werror_only_when_asked():
    def warn(*extra):
        env = clean_env()
        env.pop("WERROR", None)
        return run(["make", "--no-print-directory", "-s", "print-WARN", *extra], cwd=ROOT,
                   env=env, timeout=60).stdout.split()
    assert "-Werror" not in warn()
    assert "-Werror" in warn("WERROR=1")
    assert "-Wall" in warn() and "-Wextra" in warn()


def test_demo_deps_need_only_the_native_compiler(tmp_path):
    """scripts/deps.sh demo (what `make demo` runs) with a PATH that has the
    native toolchain and nothing of the test suite's (no cross compiler,
    qemu, valgrind, pytest): nothing is missing. apt-get is a stub that
    fails, so a missing package cannot be installed behind the test's back."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("gcc", "make", "ld", "bash", "id", "sed", "cat", "mktemp", "rm", "tail"):
        path = shutil.which(tool)
        assert path, f"{tool} not found"
        os.symlink(path, bindir / tool)
    (bindir / "apt-get").write_text("#!/bin/sh\necho \"apt-get $*\" >&2\nexit 1\n")
    (bindir / "apt-get").chmod(0o755)
    env = clean_env(PATH=str(bindir), TMPDIR=str(tmp_path))
    script = os.path.join(ROOT, "scripts", "deps.sh")
    p = run([str(bindir / "bash"), script, "demo"], env=env, check=False, timeout=60)
    assert p.returncode == 0 and p.stdout + p.stderr == "", p.stdout + p.stderr
    # The test group does want the cross compiler: the stub shows it.
    p = run([str(bindir / "bash"), script, "test"], env=env, check=False, timeout=60)
    assert p.returncode != 0 and "gcc-aarch64-linux-gnu" in p.stdout + p.stderr, \
        p.stdout + p.stderr
