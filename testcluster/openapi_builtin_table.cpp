// The schema table of the kinds the test cluster serves itself (see
// openapi_builtin.h for the notation). Field names and types follow
// k8s.io/api, kubevirt.io/api, CDI and external-snapshotter; the
// descriptions are short summaries written for this table.
#include "testcluster/openapi_builtin.h"

namespace kvb::testcluster {

const char* builtin_schema_table() {
  return R"(
@meta.ObjectMeta: Metadata every persisted object has: name, namespace, labels, annotations and what the server sets.
  name string: Unique name within the namespace (or the cluster for cluster-scoped kinds).
  generateName string: Prefix the server completes with random characters when name is empty.
  namespace string: The namespace the object lives in; empty for cluster-scoped kinds.
  selfLink string: Deprecated; not set.
  uid string: Unique identifier the server assigns on creation.
  resourceVersion string: Opaque version of the object, for optimistic concurrency and watches.
  generation integer: Sequence number of the desired state (the spec), incremented by the server.
  creationTimestamp time: When the object was created.
  deletionTimestamp time: When the object was asked to be deleted; set while finalizers hold it.
  deletionGracePeriodSeconds integer: Grace period granted for the deletion.
  labels map:string: Key/value pairs for selecting and grouping objects.
  annotations map:string: Key/value pairs of arbitrary, non-identifying metadata.
  ownerReferences []meta.OwnerReference: Objects this one depends on; garbage collection follows them.
  finalizers []string: Conditions that must be cleared before the object is deleted.
  managedFields []meta.ManagedFieldsEntry: Which manager owns which fields (server-side apply).
@meta.OwnerReference: Identifies an owning object.
  apiVersion string: API version of the owner.
  kind string: Kind of the owner.
  name string: Name of the owner.
  uid string: UID of the owner.
  controller boolean: True when the owner is the managing controller.
  blockOwnerDeletion boolean: True when a foreground deletion of the owner waits for this object.
@meta.ManagedFieldsEntry: The fields one manager owns, and by which operation.
  manager string: Name of the field manager.
  operation string: Apply or Update.
  apiVersion string: API version the field set is expressed in.
  time time: When the entry last changed.
  fieldsType string: Format of fieldsV1; always FieldsV1.
  fieldsV1 object: The owned field set.
  subresource string: Subresource the entry was written through.
@meta.LabelSelector: Selects objects by labels.
  matchLabels map:string: Labels an object must carry exactly.
  matchExpressions []meta.LabelSelectorRequirement: Set-based requirements, ANDed.
@meta.LabelSelectorRequirement: One set-based label requirement.
  key string: The label key.
  operator string: In, NotIn, Exists or DoesNotExist.
  values []string: Values for In and NotIn.
@core.Pod v1/Pod: A group of containers scheduled together onto one node.
  metadata meta.ObjectMeta: Standard object metadata.
  spec core.PodSpec: Desired behaviour of the pod.
  status core.PodStatus: Observed state of the pod, written by the system.
@core.PodSpec: What runs in a pod and how.
  volumes []core.Volume: Volumes the containers may mount.
  initContainers []core.Container: Containers that run to completion, in order, before the others start.
  containers []core.Container: The pod's application containers; at least one.
  ephemeralContainers []object: Debugging containers added to a running pod.
  restartPolicy string: Always, OnFailure or Never.
  terminationGracePeriodSeconds integer: Seconds given to the pod to stop gracefully.
  activeDeadlineSeconds integer: Seconds the pod may be active before it is failed.
  dnsPolicy string: How DNS is set up for the pod.
  nodeSelector map:string: Labels a node must have for the pod to be scheduled there.
  serviceAccountName string: Service account the pod runs as.
  serviceAccount string: Deprecated alias of serviceAccountName.
  automountServiceAccountToken boolean: Whether the service account token is mounted.
  nodeName string: Node the pod is bound to.
  hostNetwork boolean: Use the node's network namespace.
  hostPID boolean: Use the node's PID namespace.
  hostIPC boolean: Use the node's IPC namespace.
  shareProcessNamespace boolean: One PID namespace for all containers of the pod.
  securityContext object: Pod-level security attributes.
  imagePullSecrets []core.LocalObjectReference: Secrets used to pull the images.
  hostname string: Hostname of the pod.
  subdomain string: Subdomain of the pod's fully qualified name.
  affinity object: Scheduling constraints.
  schedulerName string: Scheduler that places the pod.
  tolerations []core.Toleration: Taints the pod tolerates.
  hostAliases []object: Extra /etc/hosts entries.
  priorityClassName string: Priority class of the pod.
  priority integer: Priority value resolved from the class.
  dnsConfig object: DNS parameters besides dnsPolicy.
  readinessGates []object: Extra conditions for pod readiness.
  runtimeClassName string: Runtime class that runs the pod.
  enableServiceLinks boolean: Whether service environment variables are injected.
  preemptionPolicy string: Whether the pod may preempt lower-priority pods.
  overhead map:quantity: Resources the pod's runtime uses beyond its containers.
  topologySpreadConstraints []object: How pods are spread across topology domains.
  setHostnameAsFQDN boolean: Use the fully qualified name as the hostname.
  os object: Operating system of the containers.
  hostUsers boolean: Use the host's user namespace.
  schedulingGates []object: Gates that hold the pod from being scheduled.
  resourceClaims []object: Dynamic resource claims of the pod.
  resources core.ResourceRequirements: Pod-level resource requirements.
@core.PodStatus +open: Observed state of a pod.
  phase string: Pending, Running, Succeeded, Failed or Unknown.
  conditions []object: Current service state of the pod.
  hostIP string: IP of the node the pod runs on.
  podIP string: IP address of the pod.
  podIPs []object: IP addresses of the pod.
  startTime time: When the kubelet acknowledged the pod.
  containerStatuses []object: Status of each container.
  qosClass string: Quality of service class.
@core.Container: One container of a pod.
  name string: Name of the container, unique within the pod.
  image string: Container image.
  command []string: Entrypoint array; the image's ENTRYPOINT when empty.
  args []string: Arguments to the entrypoint.
  workingDir string: Working directory.
  ports []core.ContainerPort: Ports the container exposes.
  envFrom []object: Sources of environment variables.
  env []core.EnvVar: Environment variables.
  resources core.ResourceRequirements: Compute resources the container needs.
  resizePolicy []object: How resources are resized.
  restartPolicy string: Restart policy of an init container (Always for sidecars).
  volumeMounts []core.VolumeMount: Volumes mounted into the container's file system.
  volumeDevices []core.VolumeDevice: Block devices the container uses.
  livenessProbe object: Probe of container liveness.
  readinessProbe object: Probe of container readiness.
  startupProbe object: Probe of successful start.
  lifecycle object: Actions on container start and stop.
  terminationMessagePath string: File the termination message is read from.
  terminationMessagePolicy string: How the termination message is filled in.
  imagePullPolicy string: Always, Never or IfNotPresent.
  securityContext object: Container-level security attributes.
  stdin boolean: Allocate a buffer for stdin.
  stdinOnce boolean: Close stdin after the first attach ends.
  tty boolean: Allocate a TTY.
@core.ContainerPort: A network port of a container.
  name string: Name of the port.
  hostPort integer: Port exposed on the host.
  containerPort integer: Port number on the pod's IP.
  protocol string: TCP, UDP or SCTP; TCP by default.
  hostIP string: Host IP the external port binds to.
@core.EnvVar: One environment variable.
  name string: Name of the variable.
  value string: Literal value.
  valueFrom object: Source of the value.
@core.VolumeMount: A volume mounted into a container.
  name string: Name of the volume.
  readOnly boolean: Mount read-only.
  recursiveReadOnly string: Whether read-only mounts are recursively read-only.
  mountPath string: Path within the container.
  subPath string: Path within the volume.
  mountPropagation string: How mounts propagate.
  subPathExpr string: Expanded path within the volume.
@core.VolumeDevice: A raw block volume in a container.
  name string: Name of the claim volume.
  devicePath string: Path of the device in the container.
@core.ResourceRequirements: Compute resource requirements.
  limits map:quantity: Maximum amounts allowed.
  requests map:quantity: Minimum amounts required.
  claims []object: Dynamic resource claims used.
@core.Volume: A named volume of a pod.
  name string: Name of the volume, unique within the pod.
  persistentVolumeClaim core.PersistentVolumeClaimVolumeSource: A claim in the pod's namespace.
  configMap object: A ConfigMap's keys as files.
  secret object: A Secret's keys as files.
  emptyDir object: A temporary directory sharing the pod's lifetime.
  hostPath object: A file or directory on the node.
  downwardAPI object: Pod fields as files.
  projected object: Several sources in one directory.
  csi object: An ephemeral CSI volume.
  ephemeral object: A claim created and deleted with the pod.
  image object: An OCI image's content.
  nfs object: An NFS export.
  iscsi object: An iSCSI disk.
  fc object: A Fibre Channel disk.
  rbd object: A Rados block device.
  cephfs object: A CephFS mount.
  cinder object: An OpenStack Cinder volume.
  flexVolume object: A volume of a FlexVolume driver.
  flocker object: A Flocker volume.
  gcePersistentDisk object: A GCE persistent disk.
  awsElasticBlockStore object: An AWS EBS volume.
  azureDisk object: An Azure data disk.
  azureFile object: An Azure file share.
  gitRepo object: Deprecated: a git repository checkout.
  glusterfs object: A Glusterfs mount.
  photonPersistentDisk object: A Photon persistent disk.
  portworxVolume object: A Portworx volume.
  quobyte object: A Quobyte mount.
  scaleIO object: A ScaleIO volume.
  storageos object: A StorageOS volume.
  vsphereVolume object: A vSphere volume.
@core.PersistentVolumeClaimVolumeSource: A reference to a claim in the same namespace.
  claimName string: Name of the claim.
  readOnly boolean: Mount read-only.
@core.LocalObjectReference: A reference to an object in the same namespace.
  name string: Name of the referent.
@core.Toleration: A taint the pod tolerates.
  key string: Taint key.
  operator string: Exists or Equal.
  value string: Taint value.
  effect string: Taint effect.
  tolerationSeconds integer: How long a NoExecute taint is tolerated.
@core.PersistentVolumeClaim v1/PersistentVolumeClaim: A user's request for storage.
  metadata meta.ObjectMeta: Standard object metadata.
  spec core.PersistentVolumeClaimSpec: The storage requested.
  status core.PersistentVolumeClaimStatus: Observed state of the claim.
@core.PersistentVolumeClaimSpec: The storage a claim asks for.
  accessModes []string: Access modes the volume must have (ReadWriteOnce, ReadOnlyMany, ReadWriteMany, ReadWriteOncePod).
  selector meta.LabelSelector: Labels of volumes the claim may bind to.
  resources core.VolumeResourceRequirements: Minimum (and maximum) size of the volume.
  volumeName string: Name of the volume bound to the claim.
  storageClassName string: Storage class that provisions the volume.
  volumeMode string: Filesystem or Block; Filesystem by default.
  dataSource core.TypedLocalObjectReference: Object to populate the volume from (snapshot, claim).
  dataSourceRef core.TypedObjectReference: Object to populate the volume from, kept in step with dataSource.
  volumeAttributesClassName string: Volume attributes class of the claim.
@core.PersistentVolumeClaimStatus +open: Observed state of a claim.
  phase string: Pending, Bound or Lost.
  accessModes []string: Access modes the bound volume has.
  capacity map:quantity: Capacity of the bound volume.
  conditions []object: Conditions of the claim.
  allocatedResources map:quantity: Resources allocated to the claim.
@core.VolumeResourceRequirements: Storage resource requirements.
  limits map:quantity: Maximum amounts allowed.
  requests map:quantity: Minimum amounts required (storage).
@core.TypedLocalObjectReference: A typed reference to an object in the same namespace.
  apiGroup string: API group of the referent; empty for the core group.
  kind string: Kind of the referent.
  name string: Name of the referent.
@core.TypedObjectReference: A typed reference to an object, possibly in another namespace.
  apiGroup string: API group of the referent; empty for the core group.
  kind string: Kind of the referent.
  name string: Name of the referent.
  namespace string: Namespace of the referent.
@core.ObjectReference: A reference to an object.
  apiVersion string: API version of the referent.
  kind string: Kind of the referent.
  name string: Name of the referent.
  namespace string: Namespace of the referent.
  uid string: UID of the referent.
  resourceVersion string: Version of the referent.
  fieldPath string: A field within the referent.
@core.PersistentVolume v1/PersistentVolume: A piece of storage in the cluster.
  metadata meta.ObjectMeta: Standard object metadata.
  spec core.PersistentVolumeSpec: The volume's properties.
  status core.PersistentVolumeStatus: Observed state of the volume.
@core.PersistentVolumeSpec: Properties of a persistent volume.
  capacity map:quantity: Capacity of the volume.
  accessModes []string: Ways the volume can be mounted.
  claimRef core.ObjectReference: The claim bound to the volume.
  persistentVolumeReclaimPolicy string: Retain, Recycle or Delete: what happens when the claim is gone.
  storageClassName string: Storage class of the volume.
  mountOptions []string: Mount options.
  volumeMode string: Filesystem or Block.
  nodeAffinity object: Nodes the volume can be reached from.
  volumeAttributesClassName string: Volume attributes class of the volume.
  csi core.CSIPersistentVolumeSource: A volume of a CSI driver.
  hostPath object: A directory on the node.
  local object: A local disk of a node.
  nfs object: An NFS export.
  iscsi object: An iSCSI disk.
  fc object: A Fibre Channel disk.
  rbd object: A Rados block device.
  cephfs object: A CephFS mount.
  cinder object: An OpenStack Cinder volume.
  flexVolume object: A volume of a FlexVolume driver.
  flocker object: A Flocker volume.
  gcePersistentDisk object: A GCE persistent disk.
  awsElasticBlockStore object: An AWS EBS volume.
  azureDisk object: An Azure data disk.
  azureFile object: An Azure file share.
  glusterfs object: A Glusterfs mount.
  photonPersistentDisk object: A Photon persistent disk.
  portworxVolume object: A Portworx volume.
  quobyte object: A Quobyte mount.
  scaleIO object: A ScaleIO volume.
  storageos object: A StorageOS volume.
  vsphereVolume object: A vSphere volume.
@core.CSIPersistentVolumeSource +open: A volume managed by a CSI driver.
  driver string: Name of the driver.
  volumeHandle string: The driver's identifier of the volume.
  readOnly boolean: Publish read-only.
  fsType string: File system type.
  volumeAttributes map:string: Attributes of the volume.
@core.PersistentVolumeStatus +open: Observed state of a persistent volume.
  phase string: Pending, Available, Bound, Released or Failed.
  message string: Why the volume is in this phase.
  reason string: Short reason of the phase.
  lastPhaseTransitionTime time: When the phase last changed.
@core.Namespace v1/Namespace: A scope for names.
  metadata meta.ObjectMeta: Standard object metadata.
  spec core.NamespaceSpec: Finalizers of the namespace.
  status object: Observed state of the namespace.
@core.NamespaceSpec: The namespace's finalizers.
  finalizers []string: Values that must be removed before the namespace goes.
@core.Node v1/Node: A worker machine.
  metadata meta.ObjectMeta: Standard object metadata.
  spec object: The node's configuration.
  status object: Observed state of the node.
@core.Secret v1/Secret: Secret data.
  metadata meta.ObjectMeta: Standard object metadata.
  data map:string: Base64-encoded values.
  stringData map:string: Plain values merged into data on write.
  type string: Type of the secret.
  immutable boolean: Whether the data may change.
@core.ConfigMap v1/ConfigMap: Configuration data.
  metadata meta.ObjectMeta: Standard object metadata.
  data map:string: UTF-8 values.
  binaryData map:string: Base64-encoded binary values.
  immutable boolean: Whether the data may change.
@core.ServiceAccount v1/ServiceAccount: An identity for processes in pods.
  metadata meta.ObjectMeta: Standard object metadata.
  secrets []core.ObjectReference: Secrets pods of this account may use.
  imagePullSecrets []core.LocalObjectReference: Secrets for pulling images.
  automountServiceAccountToken boolean: Whether tokens are mounted.
@core.Event +open v1/Event: A report of something that happened.
  metadata meta.ObjectMeta: Standard object metadata.
  involvedObject core.ObjectReference: The object the event is about.
  reason string: Short machine-readable reason.
  message string: Human-readable description.
  source object: Component that reported it.
  type string: Normal or Warning.
  count integer: How often it happened.
  firstTimestamp time: First occurrence.
  lastTimestamp time: Latest occurrence.
  reportingComponent string: Controller that emitted it.
@storage.StorageClass storage.k8s.io/v1/StorageClass: A class of dynamically provisioned storage.
  metadata meta.ObjectMeta: Standard object metadata.
  provisioner string: Driver that provisions the volumes.
  parameters map:string: Parameters for the provisioner.
  reclaimPolicy string: Reclaim policy of the volumes (Delete by default).
  mountOptions []string: Mount options of the volumes.
  allowVolumeExpansion boolean: Whether claims may grow.
  volumeBindingMode string: Immediate or WaitForFirstConsumer.
  allowedTopologies []object: Where volumes may be provisioned.
@io.k8s.api.coordination.v1.Lease coordination.k8s.io/v1/Lease: A lease.
  metadata meta.ObjectMeta: Standard object metadata.
  spec io.k8s.api.coordination.v1.LeaseSpec: The lease's holder and times.
@io.k8s.api.coordination.v1.LeaseSpec +open: Holder and times of a lease.
  holderIdentity string: Who holds the lease.
  leaseDurationSeconds integer: How long a holder must wait before taking it over.
  acquireTime time: When it was acquired.
  renewTime time: When it was last renewed.
  leaseTransitions integer: How often the holder changed.
@snap.VolumeSnapshot snapshot.storage.k8s.io/v1/VolumeSnapshot: A user's request for a snapshot of a volume.
  metadata meta.ObjectMeta: Standard object metadata.
  spec snap.VolumeSnapshotSpec: What to snapshot.
  status object: Observed state of the snapshot.
@snap.VolumeSnapshotSpec: The source and class of a snapshot.
  source snap.VolumeSnapshotSource: The claim to snapshot or an existing content; exactly one.
  volumeSnapshotClassName string: Class of the snapshot; the default class when empty.
@snap.VolumeSnapshotSource: Where a snapshot comes from.
  persistentVolumeClaimName string: Claim to snapshot (dynamic provisioning).
  volumeSnapshotContentName string: Existing content to bind (pre-provisioned).
@snap.VolumeSnapshotContent snapshot.storage.k8s.io/v1/VolumeSnapshotContent: A snapshot taken on the storage system.
  metadata meta.ObjectMeta: Standard object metadata.
  spec snap.VolumeSnapshotContentSpec: The snapshot's properties.
  status object: Observed state of the content.
@snap.VolumeSnapshotContentSpec +open: Properties of a snapshot content.
  volumeSnapshotRef core.ObjectReference: The VolumeSnapshot bound to the content.
  deletionPolicy string: Delete or Retain.
  driver string: CSI driver of the snapshot.
  source object: Volume handle or snapshot handle.
  volumeSnapshotClassName string: Class of the snapshot.
  sourceVolumeMode string: Volume mode of the snapshotted volume.
@snap.VolumeSnapshotClass snapshot.storage.k8s.io/v1/VolumeSnapshotClass: A class of snapshots.
  metadata meta.ObjectMeta: Standard object metadata.
  driver string: CSI driver that takes the snapshots.
  parameters map:string: Parameters for the driver.
  deletionPolicy string: Delete or Retain.
@kv.VirtualMachine kubevirt.io/v1/VirtualMachine: A virtual machine and its lifecycle; creates VirtualMachineInstances.
  metadata meta.ObjectMeta: Standard object metadata.
  spec kv.VirtualMachineSpec: Desired state of the virtual machine.
  status object: Observed state of the virtual machine.
@kv.VirtualMachineSpec: Desired state of a virtual machine.
  running boolean: Deprecated: whether an instance should run; use runStrategy.
  runStrategy string: When the instance runs: Always, RerunOnFailure, Manual, Halted, Once or WaitAsReceiver.
  instancetype object: Instance type the VM's resources come from.
  preference object: Preferences applied to the VM.
  template kv.VirtualMachineInstanceTemplateSpec: The instance this VM creates.
  dataVolumeTemplates []kv.DataVolumeTemplateSpec: DataVolumes created with the VM and owned by it.
  updateVolumesStrategy string: How volume updates reach a running instance.
@kv.VirtualMachineInstanceTemplateSpec: Template of a virtual machine instance.
  metadata meta.ObjectMeta: Metadata of the instance.
  spec kv.VirtualMachineInstanceSpec: Spec of the instance.
@kv.VirtualMachineInstanceSpec +open: Specification of a virtual machine instance.
  domain object: CPU, memory, devices and firmware of the guest.
  volumes []kv.Volume: Volumes the domain's disks use.
  networks []object: Networks the interfaces attach to.
  nodeSelector map:string: Labels a node must have.
  affinity object: Scheduling constraints.
  tolerations []core.Toleration: Taints tolerated.
  terminationGracePeriodSeconds integer: Seconds given to the guest to shut down.
  evictionStrategy string: What happens on node drain.
  hostname string: Hostname of the guest.
  subdomain string: Subdomain of the guest.
  accessCredentials []object: Credentials injected into the guest.
  livenessProbe object: Probe of guest liveness.
  readinessProbe object: Probe of guest readiness.
@kv.Volume +open: A volume of a virtual machine instance.
  name string: Name, matching a disk of the domain.
  dataVolume object: A DataVolume by name.
  persistentVolumeClaim object: A claim by name.
  cloudInitNoCloud object: Cloud-init NoCloud data.
  cloudInitConfigDrive object: Cloud-init ConfigDrive data.
  containerDisk object: A disk image from a container image.
  emptyDisk object: A temporary disk.
  ephemeral object: A claim behind a copy-on-write overlay.
  secret object: A Secret as a disk.
  configMap object: A ConfigMap as a disk.
  serviceAccount object: A service account's token as a disk.
@kv.DataVolumeTemplateSpec: A DataVolume the VM creates.
  metadata meta.ObjectMeta: Metadata of the DataVolume.
  spec cdi.DataVolumeSpec: Spec of the DataVolume.
  status object: Placeholder status; ignored.
@kv.VirtualMachineInstance kubevirt.io/v1/VirtualMachineInstance: A running virtual machine.
  metadata meta.ObjectMeta: Standard object metadata.
  spec kv.VirtualMachineInstanceSpec: Specification of the instance.
  status object: Observed state of the instance.
@cdi.DataVolume cdi.kubevirt.io/v1beta1/DataVolume: A claim populated by CDI (import, clone, upload).
  metadata meta.ObjectMeta: Standard object metadata.
  spec cdi.DataVolumeSpec: Source and storage of the DataVolume.
  status object: Observed state of the DataVolume.
@cdi.DataVolumeSpec: Where a DataVolume's data comes from and where it goes.
  source object: Source of the data (http, registry, pvc, snapshot, upload, blank, ...).
  sourceRef object: An indirect source (a DataSource).
  pvc core.PersistentVolumeClaimSpec: The claim to create, as given.
  storage object: The claim to create, completed by CDI from the storage profile.
  priorityClassName string: Priority class of the importer pods.
  contentType string: kubevirt or archive.
  checkpoints []object: Checkpoints of a multi-stage import.
  finalCheckpoint boolean: Whether the last checkpoint is the final one.
  preallocation boolean: Whether to preallocate the volume.
)";
}

}  // namespace kvb::testcluster
