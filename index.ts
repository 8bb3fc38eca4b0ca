import * as pulumi from "@pulumi/pulumi";
import { assertMasterCount, faultTolerance, quorum } from "./components/topology";

const config = new pulumi.Config("raftkv");
const masters = config.getNumber("masters") ?? 3;
assertMasterCount(masters);

export const quorumSize = quorum(masters);
export const tolerates = faultTolerance(masters);
