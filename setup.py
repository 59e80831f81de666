"""Package discovery (everything else is in pyproject.toml).

The library's packages are found under ``samic_vos/``; ``pipelines/`` and ``eval/`` stay
top-level folders of the tree (the project's layout) and install as ``samic_vos.pipelines`` and
``samic_vos.eval`` with their subpackages, so they never shadow the global names.
"""

from setuptools import find_packages, setup

# Top-level folders of the tree and the package each installs as.
INSTALLED_AS = {"pipelines": "samic_vos.pipelines", "eval": "samic_vos.eval"}

packages = find_packages(include=["samic_vos", "samic_vos.*"])
package_dir = {"samic_vos": "samic_vos"}
for folder, name in INSTALLED_AS.items():
    packages += [name, *(f"{name}.{sub}" for sub in find_packages(folder))]
    package_dir[name] = folder

setup(packages=packages, package_dir=package_dir)
