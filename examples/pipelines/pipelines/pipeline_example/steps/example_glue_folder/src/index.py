"""The seed's example Glue Python shell job: arguments from the contract."""
import sys

from awsglue.utils import getResolvedOptions

args = getResolvedOptions(sys.argv, ["JOB_NAME", "key1", "key2"])
print("glue job {} got key1={} key2={}".format(args["JOB_NAME"], args["key1"], args["key2"]))
