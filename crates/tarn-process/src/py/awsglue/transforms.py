"""Glue's transforms as classes with `apply`, over DynamicFrame's methods."""

from awsglue.dynamicframe import DynamicFrame


class ApplyMapping:
    @staticmethod
    def apply(frame, mappings, case_sensitive=False, transformation_ctx="", **kwargs):
        return frame.apply_mapping(mappings)


class Filter:
    @staticmethod
    def apply(frame, f, transformation_ctx="", **kwargs):
        return frame.filter(f)


class Map:
    @staticmethod
    def apply(frame, f, transformation_ctx="", **kwargs):
        return frame.map(f)


class Join:
    @staticmethod
    def apply(frame1, frame2, keys1, keys2, transformation_ctx="", **kwargs):
        return frame1.join(keys1, keys2, frame2)


class SelectFields:
    @staticmethod
    def apply(frame, paths, transformation_ctx="", **kwargs):
        return frame.select_fields(paths)


class DropFields:
    @staticmethod
    def apply(frame, paths, transformation_ctx="", **kwargs):
        return frame.drop_fields(paths)


class RenameField:
    @staticmethod
    def apply(frame, old_name, new_name, transformation_ctx="", **kwargs):
        return frame.rename_field(old_name, new_name)


class DropNullFields:
    @staticmethod
    def apply(frame, transformation_ctx="", **kwargs):
        return frame.drop_null_fields()


class ResolveChoice:
    @staticmethod
    def apply(frame, specs=None, choice="", transformation_ctx="", **kwargs):
        return frame.resolveChoice(specs=specs, choice=choice)


__all__ = [
    "ApplyMapping",
    "DropFields",
    "DropNullFields",
    "DynamicFrame",
    "Filter",
    "Join",
    "Map",
    "RenameField",
    "ResolveChoice",
    "SelectFields",
]
