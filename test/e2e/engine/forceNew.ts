/**
 * Which input changes make each provider replace a resource instead of updating it in place
 * ("force-new" / RequiresReplace), per resource type the program declares. Paths are input
 * property paths in Pulumi's camelCase; a change at or below a listed path replaces.
 *
 * Sources (the providers the program pins):
 *  - @pulumi/aws 7.x wraps terraform-provider-aws v6; the lists below are the `ForceNew: true`
 *    attributes of its schemas (internal/service/ec2/ec2_instance.go, vpc_*.go, elbv2/*.go),
 *    which the Pulumi docs pages render as "Changing this forces a new resource".
 *    Instance `userData`: "Updates to this field will trigger a stop/start of the EC2 instance
 *    by default. If the userDataReplaceOnChange is set then updates to this field will trigger a
 *    destroy and recreate of the EC2 instance." (aws.ec2.Instance docs, 7.x).
 *  - @pulumi/command 1.x (pulumi-command v1.2.1, provider/pkg/provider/common/inputs.go and
 *    remote/copy.go): only `triggers` is tagged `replaceOnChanges`; Command and CopyToRemote
 *    implement Update, so every other change is an update.
 *  - @pulumi/tls 5.x wraps terraform-provider-tls v4 (internal/provider/resource_*.go): every
 *    configurable attribute has RequiresReplace (PEM inputs via requireReplaceIfStateContainsPEMString)
 *    except `early_renewal_hours`; a certificate inside its early-renewal window is replaced
 *    (common_cert.go modifyPlanIfCertificateReadyForRenewal), see mockProvider.ts.
 *
 * A type missing here is refused by the planner: guessing "update" would be kinder than the
 * real provider.
 */
export const FORCE_NEW: Record<string, readonly string[]> = {
  "aws:ec2/vpc:Vpc": ["cidrBlock", "instanceTenancy", "ipv4IpamPoolId", "ipv4NetmaskLength"],
  "aws:ec2/subnet:Subnet": ["vpcId", "cidrBlock", "availabilityZone", "availabilityZoneId", "outpostArn", "ipv4IpamPoolId"],
  // vpcId attaches/detaches in place (aws_internet_gateway has no ForceNew attribute).
  "aws:ec2/internetGateway:InternetGateway": [],
  "aws:ec2/routeTable:RouteTable": ["vpcId"],
  "aws:ec2/routeTableAssociation:RouteTableAssociation": ["subnetId", "gatewayId"],
  "aws:ec2/eip:Eip": ["domain", "vpc", "address", "customerOwnedIpv4Pool", "networkBorderGroup", "publicIpv4Pool", "ipamPoolId"],
  "aws:ec2/natGateway:NatGateway": ["allocationId", "subnetId", "connectivityType", "privateIp"],
  "aws:ec2/securityGroup:SecurityGroup": ["name", "namePrefix", "description", "vpcId"],
  "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ["securityGroupId"],
  "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ["securityGroupId"],
  "aws:ec2/keyPair:KeyPair": ["keyName", "keyNamePrefix", "publicKey"],
  "aws:ec2/instance:Instance": [
    "ami",
    "availabilityZone",
    "subnetId",
    "privateIp",
    "keyName",
    "associatePublicIpAddress",
    "ebsBlockDevices",
    "ephemeralBlockDevices",
    "networkInterfaces",
    "placementGroup",
    "hostId",
    "cpuCoreCount",
    "cpuThreadsPerCore",
    "cpuOptions",
    "hibernation",
    "enclaveOptions",
    "ipv6AddressCount",
    "ipv6Addresses",
    "securityGroups",
    "launchTemplate",
    "rootBlockDevice.encrypted",
    "rootBlockDevice.kmsKeyId",
  ],
  // internal, type, subnet mappings and the name; NLB security groups are added/removed only
  // by replacement (elbv2 load_balancer.go customizeDiffNLB), treated as force-new here.
  "aws:lb/loadBalancer:LoadBalancer": ["name", "namePrefix", "internal", "loadBalancerType", "subnetMappings", "customerOwnedIpv4Pool", "securityGroups"],
  "aws:lb/targetGroup:TargetGroup": ["name", "namePrefix", "port", "protocol", "protocolVersion", "vpcId", "targetType", "ipAddressType", "lambdaMultiValueHeadersEnabled"],
  "aws:lb/listener:Listener": ["loadBalancerArn"],
  // aws_ebs_volume (ebs_volume.go): size, type, iops and throughput are modified in place
  // (ModifyVolume); a smaller size is refused by EBS (not modelled: the program only grows it).
  "aws:ebs/volume:Volume": ["availabilityZone", "encrypted", "kmsKeyId", "snapshotId", "outpostArn", "multiAttachEnabled"],
  // aws_volume_attachment (volume_attachment.go): the three identifying arguments force a new
  // attachment; forceDetach, skipDestroy and stopInstanceBeforeDetaching do not.
  "aws:ec2/volumeAttachment:VolumeAttachment": ["deviceName", "instanceId", "volumeId"],
  // aws_lb_target_group_attachment has no Update: every argument forces a new attachment.
  "aws:lb/targetGroupAttachment:TargetGroupAttachment": ["targetGroupArn", "targetId", "port", "availabilityZone"],
  "tls:index/privateKey:PrivateKey": ["algorithm", "rsaBits", "ecdsaCurve"],
  "tls:index/certRequest:CertRequest": ["privateKeyPem", "dnsNames", "ipAddresses", "uris", "subject"],
  "tls:index/selfSignedCert:SelfSignedCert": [
    "privateKeyPem",
    "validityPeriodHours",
    "allowedUses",
    "dnsNames",
    "ipAddresses",
    "uris",
    "isCaCertificate",
    "maxPathLength",
    "setSubjectKeyId",
    "setAuthorityKeyId",
    "subject",
  ],
  "tls:index/locallySignedCert:LocallySignedCert": [
    "caCertPem",
    "caPrivateKeyPem",
    "certRequestPem",
    "validityPeriodHours",
    "allowedUses",
    "isCaCertificate",
    "maxPathLength",
    "setSubjectKeyId",
  ],
  // S3 (internal/service/s3/bucket*.go) and IAM (internal/service/iam/*.go) of terraform-provider-aws v6:
  // a bucket's name and region, and each bucket setting's `bucket`, are ForceNew; the settings
  // themselves update in place. A role policy moves to another role only by replacement.
  "aws:s3/bucket:Bucket": ["bucket", "bucketPrefix", "objectLockEnabled", "region"],
  "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ["bucket", "region"],
  "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ["bucket", "region"],
  "aws:s3/bucketVersioning:BucketVersioning": ["bucket", "expectedBucketOwner", "region"],
  "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": ["bucket", "expectedBucketOwner", "region"],
  "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": ["bucket", "expectedBucketOwner", "region"],
  "aws:iam/role:Role": ["name", "namePrefix", "path"],
  "aws:iam/rolePolicy:RolePolicy": ["name", "namePrefix", "role"],
  "aws:iam/instanceProfile:InstanceProfile": ["name", "namePrefix", "path"],
  "command:remote:Command": ["triggers"],
  "command:remote:CopyToRemote": ["triggers"],
  "command:local:Command": ["triggers"],
};

/** Force-new paths of one resource given its inputs (Instance userData depends on userDataReplaceOnChange). */
export function forceNewPaths(type: string, inputs: Record<string, unknown>): readonly string[] {
  const base = FORCE_NEW[type];
  if (base === undefined) {
    throw new Error(`engine: no force-new list for ${type}; add it to test/e2e/engine/forceNew.ts with its provider source`);
  }
  if (type === "aws:ec2/instance:Instance" && inputs["userDataReplaceOnChange"] === true) return [...base, "userData", "userDataBase64"];
  return base;
}
