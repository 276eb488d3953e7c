// CDI, as the test cluster simulates it: the DataVolume controller.
//
// A DataVolume gets a claim of its name, owned by it (or adopts an existing one
// only when the claim carries cdi.kubevirt.io/storage.populatedFor=<dv name>;
// any other claim of that name is left alone with an ErrResourceExists event).
// Its phase follows the claim and the transfer, as CDI's import, clone and
// snapshot-clone controllers do: Pending (claim not bound) or
// WaitForFirstConsumer (claim in a WaitForFirstConsumer class with no consumer)
// -> ImportScheduled -> ImportInProgress -> Succeeded (sources http, registry,
// blank, upload), CloneScheduled -> CloneInProgress -> Succeeded (source.pvc: the
// new volume inherits the source volume's content), Pending -> Succeeded
// (source.snapshot: the claim restores from the VolumeSnapshot). Conditions
// Bound, Ready and Running with CDI's reasons and messages; status.progress.
// Transfers take no simulated time: each phase is still a separate write, so
// watchers see the whole sequence.
//
// Invariant: loop thread only; reacts to store events (never polls).
#pragma once

#include "testcluster/cluster.h"

#include <set>
#include <string>

namespace kvb::testcluster {

class Cdi {
 public:
  explicit Cdi(Cluster& c);
  void on_change(const StoreEvent& e);

 private:
  void reconcile(const std::string& ns, const std::string& name);
  void create_claim(const Object& dv);
  void set_status(const std::string& ns, const std::string& name, const std::string& phase, const std::string& progress,
                  const Object* pvc, const std::string& running_reason);

  Cluster& c_;
  std::set<std::string> waiting_clones_;  // "ns/dv": clones whose source claim is missing or not bound
};

}  // namespace kvb::testcluster
