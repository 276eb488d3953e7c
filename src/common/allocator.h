// Allocator settings for programs that stream large buffers (kvbackup, the
// test cluster, the benches).
//
// glibc serves requests above a dynamic threshold (128 KiB to 32 MiB) with
// mmap and gives freed heap back to the kernel eagerly (its trim threshold
// follows the mmap threshold; a secondary arena's heap is unmapped as soon as
// it is empty). A put or restore allocates and frees a buffer of up to a pack
// (~17 MB) per pack and one per chunk, so nearly every byte it handles
// lands in memory the kernel must fault in and zero again: measured on the
// 1 GiB bench image, 236,000 page faults for a put and 309,000 for a get,
// about 0.8 s of CPU per GiB touched on this machine's virtual CPUs.
//
// tune_allocator_for_streaming() fixes the mmap threshold at 32 MiB (glibc's
// largest), keeps up to 512 MiB of freed main-arena heap, and pads every
// arena's top by 64 MiB, which also keeps a worker thread's heap from being
// unmapped the moment it is empty. Measured with the same put and get:
// 128,000 -> 20,000 and 312,000 -> 27,000 page faults, system time about
// 1.3 s -> 0.6 s and 1.3 s -> 0.45 s. Memory use is still bounded by each
// arena's peak; only the return of freed memory to the kernel is delayed,
// which is why kvbackup sets it only for commands that stream data through
// a repository (repo put/get/check, backup create --copy-data, restore from
// the repository), not for a fleet backup's many control-plane threads,
// whose arenas would each keep their padding. The settings are
// process-wide and apply to later allocations and frees; call it before the
// streaming starts. Without glibc (or under a sanitizer's allocator) it
// changes nothing.
#pragma once

namespace kvb {

void tune_allocator_for_streaming();

}  // namespace kvb
