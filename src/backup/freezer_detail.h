// Helpers shared by the freeze half (freezer.cpp) and the thaw half
// (freezer_thaw.cpp) of the Freezer; not part of its interface.
#pragma once

#include "kubevirt/freeze_api.h"
#include "record/backup_record.h"

#include <chrono>
#include <string>
#include <string_view>

namespace kvb::backup::freezer_detail {

inline WallTime now() { return WallClock::now(); }

// The record of one freeze-API call.
record::ExecutionRecord api_record(const std::string& phase, const std::string& ns, const std::string& vmi, std::string_view sub,
                                   const kubevirt::FreezeCall& c);

// A failed exec that never started (the API refused it) cannot land later; one whose stream was lost may.
bool never_started(const Status& st);

void pause(std::chrono::milliseconds d);

}  // namespace kvb::backup::freezer_detail
