"""The Support group: view and change users, lists, tasks and tags; nothing else.

No add (support fixes what exists), no delete (nothing is lost by a support action), no
permission on groups or permissions (nobody grants themselves more). The user admin also
hides is_staff, is_superuser, groups, user_permissions and the password from non-superusers.
"""

from django.db import migrations

SUPPORT_GROUP = "Support"
SUPPORT_MODELS = [("accounts", "user"), ("tasks", "tasklist"), ("tasks", "task"), ("tasks", "tag")]
SUPPORT_ACTIONS = ["view", "change"]


def create_support_group(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    permissions = []
    for app_label, model_name in SUPPORT_MODELS:
        # On a fresh database, content types and permissions are only created after the
        # last migration (post_migrate): create the few needed here, as Django would name them.
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model_name)
        verbose_name = apps.get_model(app_label, model_name)._meta.verbose_name
        for action in SUPPORT_ACTIONS:
            permission, _ = Permission.objects.get_or_create(
                content_type=content_type,
                codename=f"{action}_{model_name}",
                defaults={"name": f"Can {action} {verbose_name}"},
            )
            permissions.append(permission)
    group, _ = Group.objects.get_or_create(name=SUPPORT_GROUP)
    group.permissions.set(permissions)


def delete_support_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=SUPPORT_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_user_token_generation"),
        ("tasks", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_support_group, delete_support_group)]
